"""Evaluation in the seed's table form, the report with learning curves, and predictions.

`evaluate` scores every run plain and with rerank, their ensemble, and the two untrained
baselines, on the validation artists the runs held out and (when `test_gt.tsv` exists)
on the test split, so every figure in the table is comparable with every other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from artistsim.atomic import atomic_path, atomic_write_text
from artistsim.config import TrainConfig
from artistsim.data.splits import SplitData, load_split, run_holdout
from artistsim.embed import embed_full, embed_windows, ensemble, l2_normalise, load_run
from artistsim.evaluation.baselines import LDA, baseline_embeddings, centre_normalise, pooled_stats
from artistsim.evaluation.inference import (FusionInputs, calibrate, cohort_for, component_scores, plda_for,
                                            tune_partner)
from artistsim.evaluation.metrics import ndcg_at_k
from artistsim.evaluation.submission import write_submission
from artistsim.runs import check_data_frontend
from artistsim.search.ann import IndexSearcher
from artistsim.search.loader import load_pipeline, save_state
from artistsim.search.pipeline import InferenceSettings, MatrixSearcher, PipelineState, rank_all


@dataclass
class EmbedOptions:
    """How a run embeds tracks: full length, or rolling windows of `window` frames."""

    window: int | None = None
    hop: int = 5
    batch_size: int = 256


def embed_split(model: torch.nn.Module, split: SplitData, rows: np.ndarray, device: torch.device,
                opts: EmbedOptions, progress: bool | None = None) -> np.ndarray:
    """Embeddings of `rows` of a split with the chosen inference mode."""
    if opts.window:
        return embed_windows(model, split.source, rows, device, opts.window, opts.hop, progress=progress)
    return embed_full(model, split.source, rows, device, opts.batch_size, progress=progress)


def rank(embeddings: np.ndarray, use_rerank: bool, threshold: float = 0.85, k: int = 100,
         index: str = "exact") -> np.ndarray:
    """Top-k catalogue rows per query (self excluded), optionally with the seed's rerank.

    Ranked by the one pipeline (`artistsim.search.pipeline`) with only the rerank step on.
    `index` "exact" is our chunked exact search; "flat", "ivf", "hnsw" give the pipeline
    FAISS candidates (the latter two approximate, for catalogues of millions). A catalogue
    smaller than k + 1 yields lists of every other track.
    """
    x = l2_normalise(embeddings)
    state = PipelineState(InferenceSettings(rerank_threshold=threshold if use_rerank else None))
    return rank_all(x, state, k, searcher=None if index == "exact" else IndexSearcher(x, index))


def score_both(embeddings: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(plain, with rerank) nDCG@100 of a catalogue against itself."""
    return (ndcg_at_k(rank(embeddings, False), labels), ndcg_at_k(rank(embeddings, True, threshold), labels))


@dataclass
class Table:
    """Rows of (name -> {column -> nDCG@100}) in insertion order."""

    columns: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    sections: dict[str, Table] = field(default_factory=dict)  # further tables, printed under a heading

    def add(self, name: str, column: str, value: float) -> None:
        if column not in self.columns:
            self.columns.append(column)
        self.rows.setdefault(name, {})[column] = value

    def markdown(self) -> str:
        head = "| model | " + " | ".join(self.columns) + " |"
        sep = "|---|" + "---|" * len(self.columns)
        body = [f"| {name} | " + " | ".join(f"{vals[c]:.4f}" if c in vals else "" for c in self.columns) + " |"
                for name, vals in self.rows.items()]
        extra = [f"\n{title}\n\n{t.markdown()}" for title, t in self.sections.items()]
        return "\n".join([head, sep, *body, *extra])


def _check_same_holdout(cfgs: list[TrainConfig], runs: list[Path]) -> None:
    keys = {(c.val_fraction, c.val_min_artists, c.seed) for c in cfgs}
    if len(keys) > 1:
        raise ValueError(f"runs {[str(r) for r in runs]} held out different validation artists "
                         f"(val_fraction, val_min_artists, seed) = {sorted(keys)}; evaluate them separately")


def evaluate(data_dir: str | Path, runs: list[str | Path], device: torch.device, opts: EmbedOptions | None = None,
             threshold: float = 0.85, out_dir: str | Path | None = None, folds: int = 0, fold: int = 0,
             progress: bool | None = None, save_settings: bool = False) -> Table:
    """The seed's table (each model plain/rerank, ensemble, baselines), on validation and test.

    The inference settings are chosen on validation either way and reported; only with
    `save_settings` are they written (for exactly these runs) for `predict` and catalogues.
    """
    opts = opts or EmbedOptions()
    runs = [Path(r) for r in runs]
    check_data_frontend(runs, data_dir)
    loaded = [load_run(r, device) for r in runs]
    _check_same_holdout([cfg for _, cfg in loaded], runs)
    cfg0 = loaded[0][1]
    train = load_split(data_dir, "train", progress=progress)
    val_rows = np.flatnonzero(run_holdout(train.artists, cfg0, folds, fold))
    fit_rows = np.setdiff1d(np.arange(len(train.meta)), val_rows)
    splits = [("validation", train, val_rows)]
    test = load_split(data_dir, "test", progress=progress)
    if test.artists is not None:
        splits.append(("test", test, np.arange(len(test.meta))))
    table = Table()
    fit_stats = pooled_stats(train.source, fit_rows, progress=progress)
    fit_cat = np.concatenate(fit_stats, axis=1)
    val_cat = np.concatenate(pooled_stats(train.source, val_rows, progress=progress), axis=1)
    lda, wccn, partner = tune_partner(fit_cat, train.artists[fit_rows], val_cat, train.artists[val_rows])
    tuned = {f"baseline: lda tuned ({lda.describe()})": lda, f"baseline: wccn tuned ({wccn.describe()})": wccn}
    inputs: dict[str, FusionInputs] = {}
    for split_name, split, rows in splits:
        labels = split.artists[rows]
        embs = []
        for run, (model, _) in zip(runs, loaded):
            embs.append(embed_split(model, split, rows, device, opts, progress))
            _add(table, run.name, split_name, score_both(embs[-1], labels, threshold))
        if len(embs) > 1:
            _add(table, "ensemble", split_name, score_both(ensemble(embs), labels, threshold))
        stats = pooled_stats(split.source, rows, progress=progress)
        for method in ("meanpool", "lda"):
            emb = baseline_embeddings(method, fit_stats, train.artists[fit_rows], stats)
            _add(table, f"baseline: {method}", split_name, score_both(emb, labels, threshold))
        cat = np.concatenate(stats, axis=1)
        for name, linear in tuned.items():
            _add(table, name, split_name, score_both(centre_normalise(linear.transform(cat)), labels, threshold))
        inputs[split_name] = FusionInputs(embs, partner.transform(cat))
    saved = "saved for `predict` and catalogues" if save_settings else "not saved: `evaluate --save-settings` saves them"
    table.sections["Inference add-ons, each kept only when it raised validation nDCG@100 "
                   f"(the chosen settings: {saved})"] = calibrate_and_save(
        inputs, splits, train, fit_rows, fit_stats, partner, runs, loaded, device, opts, progress, save_settings)
    if out_dir is not None:
        write_report(Path(out_dir), table, runs)
    return table


def calibrate_and_save(inputs: dict[str, FusionInputs], splits: list, train: SplitData,
                       fit_rows: np.ndarray, fit_stats: tuple[np.ndarray, np.ndarray], partner: LDA, runs: list[Path],
                       loaded: list, device: torch.device, opts: EmbedOptions, progress: bool | None,
                       save: bool = False) -> Table:
    """Choose the inference settings on validation, save them (with `save`) for these runs, and
    score each step (plain, + LDA fusion, + back end, + AS-norm, + rerank) on validation and test.

    `partner` is the linear map fused with the networks (`inference.tune_partner`: the tuned
    LDA or the tuned WCCN)."""
    fit_labels = train.artists[fit_rows]
    fit = FusionInputs([embed_split(m, train, fit_rows, device, opts, progress) for m, _ in loaded],
                       partner.transform(np.concatenate(fit_stats, axis=1)))
    settings = calibrate(inputs["validation"], train.artists[splits[0][2]], fit, fit_labels, [r.name for r in runs])
    settings = replace(settings, partner=partner.kind)
    cohort = (cohort_for(fit, fit_labels, settings.lda_weight, settings.member_weights)
              if settings.as_norm_top_k else None)
    plda = plda_for(fit, fit_labels, settings)
    if save:
        save_state(runs, PipelineState(settings, partner if settings.lda_weight else None, cohort, plda))
    out = Table()
    names = {"plain": "ensemble plain" if len(runs) > 1 else f"{runs[0].name} plain",
             "members": f"+ ensemble weights ({', '.join(f'{w:g}' for w in settings.member_weights)})",
             "fusion": (f"+ LDA fusion (weight {settings.lda_weight:g}, partner {partner.kind}: {partner.describe()})"
                        if settings.lda_weight else "+ LDA fusion (weight off)"),
             "backend": (f"+ PLDA back end (shrinkage {settings.plda_shrinkage:g})" if settings.backend == "plda"
                         else "+ back end (cosine: PLDA not kept)"),
             "as_norm": f"+ AS-norm (cohort top-k {settings.as_norm_top_k or 'off'})",
             "expansion": f"+ weighted query expansion (depth {settings.expansion_depth or 'off'})",
             "rerank": f"+ rerank (threshold {settings.rerank_threshold or 'off'})"}
    for split_name, split, rows in splits:
        scores = component_scores(inputs[split_name], split.artists[rows], settings, cohort, plda)
        for key, value in scores.items():
            if key != "members" or len(runs) > 1:  # one run has no ensemble weights to choose
                out.add(names[key], split_name, value)
    return out


def _add(table: Table, name: str, split_name: str, scores: tuple[float, float]) -> None:
    table.add(name, f"{split_name} plain", scores[0])
    table.add(name, f"{split_name} rerank", scores[1])


def read_metrics(run: Path) -> list[dict]:
    """Per-epoch records a run appended to metrics.jsonl."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(run: Path, path: Path) -> bool:
    """nDCG and loss per epoch with stage boundaries marked; False when there is nothing to plot."""
    records = read_metrics(run)
    if not records:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(1, len(records) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key, title in ((axes[0], "val_ndcg", "validation nDCG@100"), (axes[1], "loss", "training loss")):
        ax.plot(x, [r[key] for r in records], marker=".")
        ax.set_title(f"{run.name}: {title}")
        ax.set_xlabel("epoch (all stages)")
        for i in range(1, len(records)):
            if records[i]["stage"] != records[i - 1]["stage"]:
                ax.axvline(i + 0.5, color="grey", linestyle=":", linewidth=1)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


def write_report(out_dir: Path, table: Table, runs: list[Path]) -> Path:
    """`report.md` with the table and one learning-curve PNG per run."""
    lines = ["# artistsim evaluation", "", "nDCG@100 (competition semantics).", "", table.markdown(), ""]
    for run in runs:
        png = out_dir / f"curves_{run.name}.png"
        if plot_curves(run, png):
            lines += [f"## {run.name}", "", f"![learning curves of {run.name}]({png.name})", ""]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def predict(data_dir: str | Path, runs: list[str | Path], device: torch.device, out: str | Path,
            use_rerank: bool = True, threshold: float = 0.85, opts: EmbedOptions | None = None,
            progress: bool | None = None, index: str = "exact", use_saved: bool = True, warn=None) -> int:
    """A complete submission for every track of test_meta.tsv; returns the number of queries.

    Ranked by the one pipeline (`artistsim.search.pipeline`) with the settings `evaluate
    --save-settings` saved for exactly these runs (`use_saved`), or the seed's rerank
    (`use_rerank`, `threshold`) when none apply; `index` other than "exact" gives the
    pipeline approximate FAISS candidates, for speed at millions of tracks.
    """
    opts = opts or EmbedOptions()
    check_data_frontend(runs, data_dir)
    test = load_split(data_dir, "test", progress=progress, labels=False)  # needs no ground truth
    rows = np.arange(len(test.meta))
    default = InferenceSettings(rerank_threshold=threshold if use_rerank else None)
    pipe = load_pipeline(runs, device, opts.window, opts.hop, use_saved, default, warn)
    emb = pipe.embedder.embed(test.source, rows, progress)
    stats = pipe.state.row_stats(emb)
    searcher = (MatrixSearcher(emb, stats, pipe.state.backend) if index == "exact"
                else IndexSearcher(emb, index, stats=stats, backend=pipe.state.backend))
    idx = rank_all(emb, pipe.state, searcher=searcher)
    trackids = test.trackids
    write_submission(out, trackids, trackids[idx])
    return len(trackids)
