"""`artistsim VERB ...`: one verb per pipeline step, grouped by wing in this package.

`pipeline` holds the batch verbs (synth, validate, pack, baseline, train, embed,
evaluate, predict, score, demo). Each verb module has `register(sub)`, which adds its
sub-commands, and `LOOPING`, the verbs that keep freed memory for reuse.

Errors in the user's input (data, configs, paths) end with a one-line message naming the
file or row and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from artistsim.cli import catalogue, pipeline
from artistsim.config import ConfigError
from artistsim.data.layout import DataError
from artistsim.runtime import tune_allocator

DESCRIPTION = "Learn which music tracks share an artist, and answer: which tracks are by the same artist as this one?"
VERB_MODULES: tuple[ModuleType, ...] = (pipeline, catalogue)
LOOPING_COMMANDS = frozenset().union(*(m.LOOPING for m in VERB_MODULES))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artistsim", description=DESCRIPTION)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in VERB_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in LOOPING_COMMANDS:
        tune_allocator()  # reuse freed buffers step after step (see artistsim.runtime)
    try:
        return args.func(args)
    except (DataError, ConfigError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"artistsim {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
