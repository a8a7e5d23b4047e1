"""The PLDA back end against cosine: nDCG@100 of the network alone and of the whole pipeline; ranking speed.

Quality, on trained runs and their data (validation artists held out as the runs held them
out, as `artistsim evaluate` does):

- the network alone (the runs' ensemble, no LDA fusion, no AS-norm, no rerank), ranked by
  cosine and by the PLDA back end (fitted on the training artists, shrinkage chosen on
  validation);
- the whole pipeline as `evaluate` chooses it on validation with the back end imposed
  (cosine only / PLDA only), and with the choice left to validation (the default).

Speed, on ~100k synthetic clustered unit vectors: the pipeline's exact top-100 (first
search + float64 re-scoring, no add-ons) under each back end, and the same through a
FAISS HNSW index built over the rows (cosine) or the PLDA track keys.

    python -m benchmarks.bench_plda --full --preset demo --seed 0 --data DIR --runs RUN [RUN ...]
    python -m benchmarks.bench_plda --full [--speed]     # speed only without --data (run_all's call)

Each call adds or replaces its section in benchmarks/results/plda.json (full mode).
Target (speed): PLDA ranking <= 1.2x the time of cosine ranking at 100k tracks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks import common as C

SPEED_TARGET = 1.2


def quality(data_dir: Path, runs: list[Path], progress: bool = False) -> tuple[list[list[str]], dict]:
    """Rows (what, validation, test) and the figures, for one dataset and its runs."""
    from artistsim.data.splits import load_split, run_holdout
    from artistsim.embed import load_run
    from artistsim.evaluation.baselines import pooled_stats
    from artistsim.evaluation.inference import (BACKENDS, PLDA_SHRINKAGE, FusionInputs, calibrate, cohort_for,
                                                component_scores, fuse, plda_for, rank_tracks, tune_lda)
    from artistsim.evaluation.metrics import ndcg_at_k
    from artistsim.evaluation.report import EmbedOptions, embed_split
    from artistsim.scoring.plda import PairLLR
    from artistsim.search.pipeline import InferenceSettings

    device = torch.device("cpu")
    loaded = [load_run(r, device) for r in runs]
    cfg = loaded[0][1]
    train = load_split(data_dir, "train", progress=progress)
    test = load_split(data_dir, "test", progress=progress)
    val_rows = np.flatnonzero(run_holdout(train.artists, cfg))
    fit_rows = np.setdiff1d(np.arange(len(train.meta)), val_rows)
    opts = EmbedOptions()

    def inputs(split, rows, lda) -> FusionInputs:
        C.log(f"embedding {len(rows)} tracks")
        parts = [embed_split(m, split, rows, device, opts, progress) for m, _ in loaded]
        return FusionInputs(parts, lda.transform(np.concatenate(pooled_stats(split.source, rows), axis=1)))

    fit_cat = np.concatenate(pooled_stats(train.source, fit_rows), axis=1)
    val_cat = np.concatenate(pooled_stats(train.source, val_rows), axis=1)
    lda = tune_lda(fit_cat, train.artists[fit_rows], val_cat, train.artists[val_rows])[0]
    fit, val = inputs(train, fit_rows, lda), inputs(train, val_rows, lda)
    tst = inputs(test, np.arange(len(test.meta)), lda)
    fit_y, val_y, test_y = train.artists[fit_rows], train.artists[val_rows], test.artists

    rows, figures = [], {}
    off = InferenceSettings(rerank_threshold=None)
    alone = {"cosine": (ndcg_at_k(rank_tracks(fuse(val, 0.0), off), val_y),
                        ndcg_at_k(rank_tracks(fuse(tst, 0.0), off), test_y))}
    trials = []
    for shrinkage in PLDA_SHRINKAGE:
        model = PairLLR.fit(fuse(fit, 0.0), fit_y, shrinkage)
        s = InferenceSettings(rerank_threshold=None, backend="plda", plda_shrinkage=shrinkage)
        trials.append((ndcg_at_k(rank_tracks(fuse(val, 0.0), s, None, model), val_y), shrinkage, s, model))
    v, shrinkage, s, model = max(trials, key=lambda t: t[0])
    alone["plda"] = (v, ndcg_at_k(rank_tracks(fuse(tst, 0.0), s, None, model), test_y))
    for name, (v, t) in alone.items():
        label = f"network alone, {name}" + (f" (shrinkage {shrinkage:g})" if name == "plda" else "")
        rows.append([label, f"{v:.4f}", f"{t:.4f}"])
        figures[f"alone_{name}"] = {"validation": v, "test": t}
    for name, backends in (("cosine", ("cosine",)), ("plda", ("plda",)), ("chosen", BACKENDS)):
        C.log(f"calibrating the whole pipeline, back ends {backends}")
        st = calibrate(val, val_y, fit, fit_y, backends=backends)
        cohort = cohort_for(fit, fit_y, st.lda_weight, st.member_weights) if st.as_norm_top_k else None
        t = component_scores(tst, test_y, st, cohort, plda_for(fit, fit_y, st))["rerank"]
        v = st.validation["rerank"]
        label = {"cosine": "whole pipeline, cosine", "plda": "whole pipeline, PLDA",
                 "chosen": f"whole pipeline, back end chosen on validation: **{st.backend}**"}[name]
        rows.append([label + f" (LDA fusion {st.lda_weight:g}, AS-norm {st.as_norm_top_k or 'off'}, expansion "
                     f"{st.expansion_depth or 'off'}, rerank {st.rerank_threshold or 'off'})", f"{v:.4f}", f"{t:.4f}"])
        figures[f"pipeline_{name}"] = {"validation": v, "test": t, "settings": st.to_record()}
    return rows, figures


def clustered(n: int, d: int, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors in clusters of `per` (artists), with anisotropic within-cluster noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) // per
    scale = np.geomspace(0.05, 1.0, d)  # within-artist variation strong in some directions, weak in others
    x = rng.normal(size=(labels.max() + 1, d))[labels] + rng.normal(size=(n, d)) * scale
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def speed(n: int, d: int, queries: int, repeats: int) -> tuple[list[list[str]], dict]:
    """Per search kind and back end: key time, ms per query (best of interleaved repeats), HNSW recall."""
    from artistsim.scoring.plda import PairLLR
    from artistsim.search.ann import IndexSearcher, recall_at_k
    from artistsim.search.pipeline import InferenceSettings, MatrixSearcher, PipelineState, Ranker

    x, labels = clustered(n, d, 10)
    plda = PairLLR.fit(x[: n // 5], labels[: n // 5], 0.2)
    q_rows = np.random.default_rng(1).choice(n, queries, replace=False)
    setups, keys_time = {}, {}
    for backend in ("cosine", "plda"):
        state = PipelineState(InferenceSettings(rerank_threshold=None, backend=backend),
                              plda=plda if backend == "plda" else None)
        t, exact = C.time_call(lambda: MatrixSearcher(x, None, state.backend))
        keys_time[backend] = t.wall
        C.log(f"building the HNSW index ({backend})")
        setups["exact", backend] = (Ranker(state), exact)
        setups["hnsw", backend] = (Ranker(state), IndexSearcher(x, "hnsw", backend=state.backend))
    best: dict = {}
    lists: dict = {}
    for r in range(repeats):  # interleaved: every setup sees the same load
        for key, (ranker, searcher) in setups.items():
            t, (_, found) = C.time_call(lambda: ranker.rank(searcher, x[q_rows], 100, q_rows))
            lists[key] = found
            if key not in best or t.wall < best[key].wall:
                best[key] = t
    rows, figures = [], {}
    for kind in ("exact", "hnsw"):
        for backend in ("cosine", "plda"):
            t = best[kind, backend]
            recall = recall_at_k(lists[kind, backend], lists["exact", backend])
            rows.append([kind, backend, f"{keys_time[backend]:.2f}", f"{1000 * t.wall / queries:.3f}",
                         f"{recall:.4f}", f"{t.cpu / t.wall:.2f}"])
        ratio = best[kind, "plda"].wall / best[kind, "cosine"].wall
        figures[kind] = {"cosine_s": best[kind, "cosine"].wall, "plda_s": best[kind, "plda"].wall, "ratio": ratio}
        rows.append([kind, "**PLDA / cosine**", "", f"**{ratio:.2f}x**", "", ""])
    return rows, figures


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__)
    parser.add_argument("--speed", action="store_true", help="the ranking speed section (the default without --data)")
    parser.add_argument("--preset", help="name of the data's preset (the quality section's heading)")
    parser.add_argument("--seed", type=int, default=0, help="the data's and runs' seed (the heading)")
    parser.add_argument("--data", type=Path, help="dataset in the competition layout (with test_gt.tsv)")
    parser.add_argument("--runs", type=Path, nargs="+", help="trained runs (their validation artists held out)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    C.set_threads(args.threads)
    facts = C.machine_facts()
    mode = C.mode_of(args)
    sections = []
    if args.speed or not args.data:  # run_all's call (no runs given): the speed section
        n, queries, repeats = (100_000, 2000, 3) if args.full else (20_000, 500, 2)
        rows, figures = speed(n, 128, queries, repeats)
        ratio = figures["exact"]["ratio"]
        sections.append(C.Section(
            heading=f"Ranking speed: PLDA back end vs cosine, {n:,} tracks of 128 dimensions, {queries} queries",
            table=C.markdown_table(["search", "back end", "searcher s", "ms / query", "recall of exact", "cores used"],
                                   rows, "llrrrr"),
            target=f"PLDA ranking <= {SPEED_TARGET}x cosine (exact search)", met=ratio <= SPEED_TARGET,
            notes=("The pipeline's first search (top 100 + MARGIN candidates, float64 re-scoring, canonical order), "
                   "no add-ons; best of interleaved repeats; recall: share of the exact lists' rows "
                   "(same back end) the HNSW lists hold. `searcher s`: the exact searcher's set-up, for PLDA the "
                   "rows' track keys computed once (cosine searches the rows as they are). Exact PLDA search runs "
                   "over keys one dimension wider (129) and maps each re-scored candidate's vector to its key (a "
                   "128 x 128 product per candidate); HNSW under PLDA is a Euclidean index over the tracks' PLDA "
                   "points (128 dimensions), searched from the query's point.")))
    if args.data:
        if not args.runs or not args.preset:
            parser.error("--data needs --runs and --preset")
        rows, figures = quality(args.data, args.runs)
        sections.append(C.Section(
            heading=(f"nDCG@100 on `{args.preset}` seed {args.seed}: cosine vs the PLDA back end "
                     f"({', '.join(r.name for r in args.runs)})"),
            table=C.markdown_table(["what", "validation", "test"], rows, "lrr"),
            notes=(f"Data: `{args.data}` (synth preset `{args.preset}`); runs: {', '.join(str(r) for r in args.runs)} "
                   f"(the recommended configs, trained on that data, seed {args.seed}). Every setting is chosen "
                   "on the validation artists (held out of training by the runs); test artists are unseen. "
                   "`evaluate` keeps the PLDA back end only where it raises validation nDCG@100.")))
    result = C.make_result("plda", "PLDA back end vs cosine: quality and ranking speed", mode, "bench_plda.py", argv,
                           sections, facts)
    C.emit(result, args.json, merge=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
