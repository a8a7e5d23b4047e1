"""The options every benchmark takes: --quick / --full, --json, --threads."""

from __future__ import annotations

import argparse
from pathlib import Path


def base_parser(description: str | None) -> argparse.ArgumentParser:
    """--quick / --full and --json, common to every benchmark."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (the default): a few minutes in all")
    mode.add_argument("--full", action="store_true", help="the sizes the targets are stated for (long)")
    p.add_argument("--json", type=Path, help="also write the result as JSON here (run_all.py uses it)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    return p


def mode_of(args: argparse.Namespace) -> str:
    return "full" if args.full else "quick"
