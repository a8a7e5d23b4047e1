"""`artistsim VERB ...`: one verb per pipeline step, grouped by wing in this package.

`pipeline` holds the batch verbs (synth, validate, pack, baseline, train, embed,
evaluate, predict, score, demo); `audio` holds featurize (audio files in). Each verb
module has `register(sub)`, which adds its sub-commands, and `LOOPING`, the verbs that
keep freed memory for reuse.

Errors in the user's input (data, configs, paths) end with a one-line message naming the
file or row and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import NoReturn

from artistsim.atomic import check_writable
from artistsim.cli import audio, catalogue, pipeline
from artistsim.config import ConfigError
from artistsim.data.layout import DataError
from artistsim.data.paths import outside_paths_allowed
from artistsim.runtime import tune_allocator

DESCRIPTION = "Learn which music tracks share an artist, and answer: which tracks are by the same artist as this one?"
VERB_MODULES: tuple[ModuleType, ...] = (pipeline, audio, catalogue)
LOOPING_COMMANDS = frozenset().union(*(m.LOOPING for m in VERB_MODULES))
# verb -> ((argument, "file" | "dir"), ...): outputs checked before any work starts
OUTPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    verb: outs for m in VERB_MODULES for verb, outs in getattr(m, "OUTPUTS", {}).items()
}
# The user's input at fault (data, configs, paths, the file system): one line, exit 2.
BAD_INPUT = (DataError, ConfigError, ValueError, OSError)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line like every other error (exit 2).

    argparse prints the whole usage block first; a user scanning a log wants the one line
    that names the argument. Sub-command parsers inherit this class (argparse passes
    `type(self)` down), so every verb behaves the same way.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _global_options(parser: argparse.ArgumentParser, on_verb: bool) -> None:
    """Options every verb takes, before or after the verb (`artistsim baseline DIR -q`).

    On a verb's parser the defaults are suppressed, so an option given before the verb is
    not reset by the verb's parser.
    """
    default = argparse.SUPPRESS if on_verb else False
    options = (
        (("-q", "--quiet"), "no progress bars"),
        (("--debug",), "show the full traceback of an error instead of one line"),
        (("--allow-outside-paths",), "let meta paths leave the split's feature folder (absolute, '..', or a link out of the data directory)"),
    )
    for flags, help_text in options:
        if not any(f in parser._option_string_actions for f in flags):
            parser.add_argument(*flags, action="store_true", default=default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="artistsim", description=DESCRIPTION)
    _global_options(parser, on_verb=False)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in VERB_MODULES:
        module.register(sub)
    for verb_parser in {id(p): p for p in sub.choices.values()}.values():
        _global_options(verb_parser, on_verb=True)
    return parser


def error_line(exc: BaseException) -> str:
    """The one line a user sees: file, row or request field, and the reason."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or [type(exc).__name__]
    return lines[0] + (f" (+{len(lines) - 1} more lines; --debug shows them)" if len(lines) > 1 else "")


def check_outputs(args: argparse.Namespace) -> None:
    """Output paths that cannot be written fail now, not after hours of embedding or training."""
    for name, kind in OUTPUTS.get(args.command, ()):
        value = getattr(args, name, None)
        if value:
            check_writable(value, kind)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in LOOPING_COMMANDS:
        tune_allocator()  # reuse freed buffers step after step (see artistsim.runtime)
    try:
        check_outputs(args)
        with outside_paths_allowed(args.allow_outside_paths):
            return args.func(args)
    except BAD_INPUT as exc:
        if args.debug:
            raise
        print(f"artistsim {args.command}: error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"artistsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's input: still one line, with the way to see more
        if args.debug:
            raise
        print(f"artistsim {args.command}: internal error: {type(exc).__name__}: {error_line(exc)} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
