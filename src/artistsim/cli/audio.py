"""Audio verbs: `featurize` turns a folder (or manifest) of audio files into the
competition layout that every other verb reads (see artistsim.audio.featurize)."""

from __future__ import annotations

import argparse

from artistsim.cli.common import non_negative_int, progress

LOOPING: frozenset[str] = frozenset()  # one-shot per track: nothing to keep for reuse
OUTPUTS = {"featurize": (("out_dir", "dir"),)}  # checked writable before any track is decoded


def cmd_featurize(args: argparse.Namespace) -> int:
    from artistsim.audio.featurize import FeaturizeOptions, featurize_dataset, parse_shard

    opts = FeaturizeOptions(labels=args.labels, tags=args.tags, test_fraction=args.test_fraction, seed=args.seed,
                            workers=args.workers, shard=parse_shard(args.shard), merge=args.merge,
                            progress=progress(args), frontend=args.frontend)
    summary = featurize_dataset(args.source, args.out_dir, opts)
    print(summary.render())
    if summary.finalized and summary.skipped:
        print(f"{summary.skipped} track(s) skipped: see {args.out_dir}/tracks.tsv (status, reason)")
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the `artistsim` parser."""
    from artistsim.audio.frontends import DEFAULT, NAMES

    p = sub.add_parser("featurize", help="audio files -> the competition layout (D-d features per window)",
                       description="Decode the middle 60 s of every audio file, describe each window (every "
                                   "0.73 s, at most 81) by the chosen front end and write train/test meta files, "
                                   "features and frontend.json. Exit 0 when every track "
                                   "was featurized, 1 when some were skipped (listed in OUT_DIR/tracks.tsv), "
                                   "2 on bad input.")
    p.add_argument("source", help="folder of audio files (recursive) or TSV manifest (path[, artist][, trackid])")
    p.add_argument("out_dir")
    p.add_argument("--labels", help="TSV with columns path, artist (paths as in the input)")
    p.add_argument("--tags", action="store_true", help="take missing artists from the files' artist tags")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of artists in the test split")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the artist split")
    p.add_argument("--workers", type=non_negative_int, default=0, help="decoding processes (default: one per core, at most 8)")
    p.add_argument("--shard", default="1/1", help="featurize only shard K of N (K/N); then run --merge")
    p.add_argument("--merge", action="store_true", help="write the meta files once every shard is done")
    p.add_argument("--frontend", default=DEFAULT, choices=NAMES,
                   help="musicnn-msd / musicnn-mtt: the musicnn tagger's 753-d mean-pool of 3 s windows "
                        "(weights from `pip install --no-deps musicnn`, which make setup runs); dsp: the 512-d "
                        "descriptor of 1.5 s windows, ~10x faster, no weights; "
                        f"default {DEFAULT}, the better on real music (docs/featurize.md)")
    p.set_defaults(func=cmd_featurize)
