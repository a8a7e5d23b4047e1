"""The batch pipeline's verbs: synth, validate, pack, baseline, train, embed, evaluate,
predict, score, and demo (which chains them on the embedded data)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from artistsim.cli.common import INDEXES, add_embed, add_holdout, progress
from artistsim.config import ConfigError, load_train_config, packaged_config
from artistsim.synth.plan import PRESETS

# Verbs whose time goes into loops that free and re-allocate the same buffers (training
# steps, embedding batches): they keep freed memory for reuse. One-shot jobs (pack, search
# alone, scoring) keep glibc's default, which returns large blocks to the OS at once.
LOOPING = frozenset({"train", "embed", "evaluate", "predict", "demo"})
# Outputs the CLI checks before a verb starts: (argument, "file" | "dir").
OUTPUTS = {"synth": (("out_dir", "dir"),), "baseline": (("out", "file"),), "train": (("out", "dir"),),
           "embed": (("out", "dir"),), "evaluate": (("out", "dir"),), "predict": (("out", "file"),),
           "demo": (("out_dir", "dir"),)}


def cmd_synth(args: argparse.Namespace) -> int:
    from artistsim.synth import generate

    summary = generate(args.out_dir, preset=args.preset, seed=args.seed, nested=args.nested,
                       progress=progress(args), overwrite=args.overwrite)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from artistsim.data.validate import validate_dataset

    report = validate_dataset(args.data_dir, progress=progress(args))
    print(report.render())
    return 0 if report.ok else 1


def cmd_pack(args: argparse.Namespace) -> int:
    from artistsim.data.layout import read_meta, readable_root
    from artistsim.data.store import pack_split

    splits = args.split or ("train", "test")
    for split in splits:  # every split's meta and paths checked before any store is written
        readable_root(args.data_dir, split, read_meta(args.data_dir, split)["archive_features_path"].tolist())
    for split in splits:
        t0 = time.time()
        summary = pack_split(args.data_dir, split, dtype=args.dtype, force=args.force, progress=progress(args))
        print(f"{split}: {summary['status']} ({summary['tracks']} tracks, {time.time() - t0:.1f} s)")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from artistsim.data.splits import holdout_mask, load_split
    from artistsim.evaluation.baselines import baseline_embeddings, pooled_stats
    from artistsim.evaluation.metrics import ndcg_at_k
    from artistsim.evaluation.report import rank
    from artistsim.evaluation.submission import write_submission

    train = load_split(args.data_dir, "train", progress=progress(args))
    val = holdout_mask(train.artists, args.val_fraction, args.seed, args.folds, args.fold,
                       args.val_min_artists)
    fit_rows, val_rows = np.flatnonzero(~val), np.flatnonzero(val)
    fit_stats = pooled_stats(train.source, fit_rows, progress=progress(args))
    val_emb = baseline_embeddings(args.method, fit_stats, train.artists[fit_rows],
                                  pooled_stats(train.source, val_rows, progress=progress(args)))
    print(f"{args.method}: validation nDCG@100 {ndcg_at_k(rank(val_emb, False, index=args.index), train.artists[val_rows]):.4f}")
    test = load_split(args.data_dir, "test", progress=progress(args))
    test_emb = baseline_embeddings(args.method, fit_stats, train.artists[fit_rows],
                                   pooled_stats(test.source, np.arange(len(test.meta)), progress=progress(args)))
    idx = rank(test_emb, args.rerank, index=args.index)
    if test.artists is not None:
        print(f"{args.method}: test nDCG@100 {ndcg_at_k(idx, test.artists):.4f}")
    if args.out:
        write_submission(args.out, test.trackids, test.trackids[idx])
        print(f"wrote {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from artistsim.training.dispatch import train

    # the random-feature LDA has no published seed recipe: its default is the recommended config
    default = "recommended/rflda.toml" if args.model == "rflda" else f"{args.model or 'transformer'}_seed.toml"
    config = args.config or packaged_config(default)
    cfg = load_train_config(config)
    if args.model and cfg.model.kind != args.model:
        raise ConfigError(f"{config}: [model] kind is {cfg.model.kind!r} but --model {args.model} was given")
    summary = train(args.data_dir, cfg, args.out, device=args.device, resume=args.resume, progress=progress(args),
                    folds=args.folds, fold=args.fold, max_steps=args.max_steps)
    print(json.dumps(summary))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from artistsim.data.splits import load_split, run_holdout
    from artistsim.embed import load_run, resolve_device, save_embeddings
    from artistsim.evaluation.report import EmbedOptions, embed_split
    from artistsim.runs import check_data_frontend

    check_data_frontend([args.run], args.data_dir)
    device = resolve_device(args.device)
    model, cfg = load_run(args.run, device)
    split = load_split(args.data_dir, "train" if args.split == "val" else "test", progress=progress(args))
    if args.split == "val":
        rows = np.flatnonzero(run_holdout(split.artists, cfg))
    else:
        rows = np.arange(len(split.meta))
    emb = embed_split(model, split, rows, device, EmbedOptions(args.window, args.hop), progress(args))
    out = args.out or Path(args.run) / f"embeddings_{args.split}"
    paths = save_embeddings(out, emb, split.trackids[rows])
    print(f"wrote {paths[0]} {emb.shape} and {paths[1]}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from artistsim.embed import resolve_device
    from artistsim.evaluation.report import EmbedOptions, evaluate

    out = args.out or Path(args.run[0]) / "evaluation"
    table = evaluate(args.data_dir, args.run, resolve_device(args.device), EmbedOptions(args.window, args.hop),
                     threshold=args.threshold, out_dir=out, progress=progress(args), save_settings=args.save_settings)
    print(table.markdown())
    print(f"report: {Path(out) / 'report.md'}")
    return 0


def warn(message: str) -> None:
    print(f"artistsim: warning: {message}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    from artistsim.embed import resolve_device
    from artistsim.evaluation.report import EmbedOptions, predict

    n = predict(args.data_dir, args.run, resolve_device(args.device), args.out, use_rerank=args.rerank,
                threshold=args.threshold, opts=EmbedOptions(args.window, args.hop), progress=progress(args),
                index=args.index, use_saved=args.saved_settings, warn=warn)
    print(f"wrote {args.out}: {n} queries")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from artistsim.data.layout import DataError
    from artistsim.evaluation.metrics import read_ground_truth, score_submission
    from artistsim.evaluation.submission import read_submission, submission_gaps

    submission, truth = read_submission(args.submission), read_ground_truth(args.ground_truth)
    gaps = submission_gaps(submission, truth["trackid"].to_numpy())
    if gaps and args.strict:
        raise DataError(f"{args.submission}: --strict: " + "; ".join(gaps))
    for gap in gaps:
        print(f"artistsim score: warning: {args.submission}: {gap}", file=sys.stderr)
    print(f"nDCG@100 {score_submission(submission, truth):.4f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from artistsim.demo import run_demo

    run_demo(Path(args.out_dir), device=args.device, progress=progress(args))
    return 0


def _add_runs(p: argparse.ArgumentParser) -> None:
    """DATA_DIR, --run (repeatable: an ensemble) and the seed's rerank --threshold: evaluate's and predict's."""
    p.add_argument("data_dir")
    p.add_argument("--run", action="append", required=True)
    p.add_argument("--threshold", type=float, default=0.85)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the `artistsim` parser."""

    p = sub.add_parser("synth", help="write the embedded synthetic dataset in the competition layout")
    p.add_argument("out_dir")
    p.add_argument("--preset", default="demo", choices=tuple(PRESETS),
                   help="demo; albums, genres, mixed (nuisance of real catalogues); "
                        "holdout, holdout_wide (never tuned on); small; full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nested", action="store_true", help="train_features/train_features/ layout")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("validate", help="check meta files and every feature file")
    p.add_argument("data_dir")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("pack", help="pack features into one memory-mapped store per split")
    p.add_argument("data_dir")
    p.add_argument("--split", action="append", choices=("train", "test"))
    p.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    p.add_argument("--force", action="store_true", help="overwrite a store that does not match the meta")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("baseline", help="untrained mean-pool or LDA baseline")
    p.add_argument("data_dir")
    p.add_argument("--method", default="meanpool", choices=("meanpool", "lda"))
    p.add_argument("--out", help="write a test submission here")
    p.add_argument("--rerank", action="store_true")
    p.add_argument("--index", default="exact", choices=INDEXES)
    add_holdout(p)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("train", help="train an encoder through its curriculum (or fit the random-feature LDA)")
    p.add_argument("data_dir")
    p.add_argument("--model", choices=("transformer", "conformer", "rflda"))
    p.add_argument("--config", help="TOML config (default: configs/MODEL_seed.toml; for rflda, "
                                     "configs/recommended/rflda.toml)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--folds", type=int, default=0)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="cap batches per epoch (smoke runs)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("embed", help="embed a split with a trained run")
    p.add_argument("data_dir")
    p.add_argument("--run", required=True)
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--out", help="output folder (default RUN/embeddings_SPLIT)")
    add_embed(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("evaluate", help="the seed's table: each run, the ensemble, baselines")
    _add_runs(p)
    p.add_argument("--out", help="report folder (default FIRST_RUN/evaluation)")
    p.add_argument("--save-settings", action="store_true",
                   help="save the inference settings chosen on validation for exactly these runs (keyed by their "
                        "checkpoints), for predict and index build")
    add_embed(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="write a submission for every test track")
    _add_runs(p)
    p.add_argument("--out", required=True)
    p.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--index", default="exact", choices=INDEXES)
    p.add_argument("--saved-settings", action=argparse.BooleanOptionalAction, default=True,
                   help="apply the inference settings `evaluate --save-settings` saved for exactly these runs "
                        "(they replace --rerank/--threshold; stale ones are ignored with a warning)")
    add_embed(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("score", help="nDCG@100 of a submission against ground truth")
    p.add_argument("submission")
    p.add_argument("ground_truth")
    p.add_argument("--strict", action="store_true", help="fail (exit 2) on missing queries or short lists")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("demo", help="synth -> validate -> pack -> baselines -> train both -> evaluate -> predict")
    p.add_argument("out_dir", nargs="?", default="demo")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_demo)
