"""Pieces every verb module of the CLI shares: progress switch and common options."""

from __future__ import annotations

import argparse

INDEXES = ("exact", "flat", "ivf", "hnsw")


def progress(args: argparse.Namespace) -> bool | None:
    """tqdm's switch: hidden with -q, else automatic (hidden when not on a terminal)."""
    return False if getattr(args, "quiet", False) else None


def add_holdout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-fraction", type=fraction, default=0.1, help="share of train artists held out")
    p.add_argument("--val-min-artists", type=non_negative_int, default=0,
                   help="hold out at least this many artists (at most half); as a config's val_min_artists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=0, help="k-fold by artist instead of a fraction (e.g. 10)")
    p.add_argument("--fold", type=int, default=0)


def add_embed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", type=window_frames, default=None, help="rolling-window length (the seed: 10); default full")
    p.add_argument("--hop", type=positive_int, default=5)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


# ------------------------------------------------------------------ option types
# Checked by argparse as the command line is read, so a bad value is one usage line
# (exit 2) before anything is loaded or written: `index build --far 2` never leaves a
# catalogue behind, `--hop 0` never reaches a division.


def _int_in(text: str, low: int, high: int | None) -> int:
    try:
        value = int(text)
    except ValueError:  # argparse's own wording for type=int
        raise argparse.ArgumentTypeError(f"invalid int value: {text[:40]!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (--k, --threads, --workers, --top ...)."""
    return _int_in(text, 1, None)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (0 meaning "automatic", as in featurize --workers)."""
    return _int_in(text, 0, None)


def window_frames(text: str) -> int:
    """A rolling-window length in frames: 1..81 (a track has at most 81)."""
    return _int_in(text, 1, 81)


def port_number(text: str) -> int:
    """A TCP port, 0..65535 (0: the system picks a free one, and serve prints it)."""
    return _int_in(text, 0, 65535)


def track_id(text: str) -> int:
    """A trackid or artist id: a plain non-negative integer below 2^63 (`artistsim.data.ids`)."""
    from artistsim.data.errors import DataError
    from artistsim.data.ids import check_id

    try:
        return check_id(text, "the id")
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fraction(text: str) -> float:
    """A rate strictly between 0 and 1 (a target false-accept rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text[:40]!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text[:40]}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (a score threshold)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text[:40]}")
    return value
