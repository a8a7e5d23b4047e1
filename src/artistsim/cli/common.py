"""Pieces every verb module of the CLI shares: progress switch and common options."""

from __future__ import annotations

import argparse

INDEXES = ("exact", "flat", "ivf", "hnsw")


def progress(args: argparse.Namespace) -> bool | None:
    """tqdm's switch: hidden with -q, else automatic (hidden when not on a terminal)."""
    return False if getattr(args, "quiet", False) else None


def add_holdout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of train artists held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=0, help="k-fold by artist instead of a fraction (e.g. 10)")
    p.add_argument("--fold", type=int, default=0)


def add_embed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", type=int, default=None, help="rolling-window length (the seed: 10); default full")
    p.add_argument("--hop", type=int, default=5)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
