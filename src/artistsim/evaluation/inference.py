"""Inference settings chosen on validation: ensemble weights, LDA fusion, AS-norm, rerank threshold.

Why: each score-level add-on helps on some data and hurts on other data (the seed's fixed
rerank threshold of 0.85 barely moved one held-out set), so none is applied blindly.
`calibrate` walks the add-ons in a fixed order on the validation artists and keeps one
only when it raises validation nDCG@100 (ties keep it off), so the chosen pipeline never
scores below the plain ensemble on validation:

0. each run's weight in the ensemble (`embed.ensemble`), from a grid, one run at a time
   (a run that only lowers validation nDCG@100 gets weight 0 and is left out; the
   runs of one ensemble can differ a lot by data: the random-feature LDA far ahead of
   the encoders on one preset, far behind on another);
1. fusion with the LDA baseline's embedding: [normalise(ensemble), w * normalise(LDA)],
   w from a grid (0 = off);
2. the back end: cosine, or the pairwise PLDA log-likelihood ratio (`search.backend`)
   fitted on the training artists in the fused space, its shrinkage from a grid. It
   changes what every later step scores, so steps 3-5 are chosen under each back end and
   PLDA is kept only when its whole chain ends higher on validation than cosine's;
3. AS-norm of the first search's candidate lists against a cohort of training-artist
   centroids (`artistsim.scoring.asnorm`), cohort top-k from a grid (0 = off);
4. weighted top-k query expansion (`artistsim.search.pipeline`), depth from a grid (0 = off);
5. the seed's threshold query expansion (`artistsim.search.pipeline`), threshold from a
   grid (None = off).

`evaluate --save-settings` saves them for exactly these runs (keyed by their checkpoints'
fingerprints, `artistsim.runs`), and `predict` and the catalogue apply them through the one
ranking pipeline (`artistsim.search.pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from artistsim.embed import fuse as fuse_parts
from artistsim.evaluation.metrics import ndcg_at_k
from artistsim.scoring.lda import LDA, WCCN, centre_normalise
from artistsim.scoring.plda import PairLLR
from artistsim.search.exact import topk
from artistsim.search.pipeline import InferenceSettings, PipelineState, rank_all
from artistsim.scoring.asnorm import artist_centroids

# (shrinkage, directions kept) for the LDA fusion partner. The baseline's own (1e-3, 128)
# is in the grid; on the demo preset stronger shrinkage and fewer directions (0.3, 64) gain
# 0.07 nDCG@100 on validation and test alike, on a noisier 800-artist variant (0.3, 32) 0.10.
LDA_GRID = tuple((r, c) for r in (1e-3, 0.01, 0.1, 0.3, 1.0) for c in (16, 32, 64, 128))
# The WCCN fusion partner (`scoring.lda.WCCN`): shrinkage toward the total scatter's diagonal
# (1 = standardisation) and directions kept. Offered beside the LDA grid because with few
# training artists LDA's C - 1 directions are too few (real music: 25 artists, standardised
# pooled means 0.685 against the tuned LDA's 0.647 on `dsp`, 0.756 against 0.684 on musicnn).
WCCN_GRID = tuple((a, c) for a in (0.1, 0.5, 0.9, 0.99, 1.0) for c in (128, 256, 512))
FUSION_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
MEMBER_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # a run's weight in the ensemble; 1 each is the plain ensemble
MEMBER_PASSES = 2  # rounds of one-run-at-a-time changes
AS_NORM_TOP_K = (0, 20, 100)
RERANK_THRESHOLDS = (None, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6)
EXPANSION_DEPTHS = (0, 1, 2, 3, 5, 10)
PLDA_SHRINKAGE = (0.05, 0.2, 0.5, 0.8)  # the PLDA back end's within-scatter shrinkage (`scoring.plda.fit`)
BACKENDS = ("cosine", "plda")  # back ends `calibrate` may choose; ("plda",) imposes it (measurements)
K = 100


@dataclass
class FusionInputs:
    """Per split: the runs' embeddings and the LDA embedding of the same tracks."""

    parts: list[np.ndarray]
    lda: np.ndarray | None = None


def _val_ndcg(partner: LDA, val_stats: np.ndarray, val_labels: np.ndarray) -> float:
    """Validation nDCG@100 of a linear map's centred, normalised embedding of the validation tracks."""
    return ndcg_at_k(topk(centre_normalise(partner.transform(val_stats)), k=min(K, len(val_stats) - 1))[1],
                     val_labels)


def _best_on_validation(maps: Iterable[LDA], val_stats: np.ndarray, val_labels: np.ndarray) -> tuple[LDA, float]:
    """The first map of the highest validation nDCG@100 among `maps`, and that score."""
    best: tuple[LDA, float] | None = None
    for linear in maps:
        score = _val_ndcg(linear, val_stats, val_labels)
        if best is None or score > best[1]:
            best = (linear, score)
    assert best is not None
    return best


def tune_lda(fit_stats: np.ndarray, fit_labels: np.ndarray, val_stats: np.ndarray,
             val_labels: np.ndarray, max_components: int = 1 << 30) -> tuple[LDA, float]:
    """The LDA (shrinkage, directions) of `LDA_GRID` scoring best on the validation artists.

    A narrow embedding (`max_components`) tries its widest LDA in place of wider ones, once.
    """
    grid = dict.fromkeys((ridge, min(components, max_components)) for ridge, components in LDA_GRID)
    return _best_on_validation((LDA(c, r).fit(fit_stats, fit_labels) for r, c in grid), val_stats, val_labels)


def tune_wccn(fit_stats: np.ndarray, fit_labels: np.ndarray, val_stats: np.ndarray,
              val_labels: np.ndarray) -> tuple[WCCN, float]:
    """The WCCN (shrinkage, directions) of `WCCN_GRID` scoring best on the validation artists.

    One fit per shrinkage: its directions are ordered, so narrower maps are its first columns.
    """
    widest = max(c for _, c in WCCN_GRID)

    def maps() -> Iterator[WCCN]:
        for shrinkage in dict.fromkeys(a for a, _ in WCCN_GRID):
            full = WCCN(widest, shrinkage).fit(fit_stats, fit_labels)
            for components in dict.fromkeys(min(c, full.components_.shape[1]) for a, c in WCCN_GRID
                                            if a == shrinkage):
                yield full.truncated(components)

    return _best_on_validation(maps(), val_stats, val_labels)  # type: ignore[return-value]


def tune_partner(fit_stats: np.ndarray, fit_labels: np.ndarray, val_stats: np.ndarray,
                 val_labels: np.ndarray) -> tuple[LDA, WCCN, LDA]:
    """(tuned LDA, tuned WCCN, fusion partner): the partner is whichever of the two scores higher
    on the validation artists (a tie keeps LDA).

    Why all three come back: the tuned LDA stays the baseline every report compares against,
    whichever map the pipeline fuses, and the WCCN is reported beside it.
    """
    lda, lda_score = tune_lda(fit_stats, fit_labels, val_stats, val_labels)
    wccn, wccn_score = tune_wccn(fit_stats, fit_labels, val_stats, val_labels)
    return lda, wccn, (wccn if wccn_score > lda_score else lda)


def fuse(inputs: FusionInputs, lda_weight: float, member_weights: list[float] | None = None) -> np.ndarray:
    """The pipeline's embedding (`artistsim.embed.fuse`) of precomputed run embeddings and LDA part."""
    return fuse_parts(inputs.parts, member_weights, inputs.lda, lda_weight)


def rank_tracks(emb: np.ndarray, settings: InferenceSettings, cohort: np.ndarray | None = None,
                plda: PairLLR | None = None) -> np.ndarray:
    """Top-100 rows per row (self excluded) through the ranking pipeline with these settings."""
    return rank_all(emb, PipelineState(settings, None, cohort if settings.as_norm_top_k else None,
                                       plda if settings.backend == "plda" else None))


def plda_for(train: FusionInputs, train_labels: np.ndarray, settings: InferenceSettings) -> PairLLR | None:
    """The PLDA back end of these settings, fitted on the training artists in the fused space (None: cosine)."""
    if settings.backend != "plda":
        return None
    return PairLLR.fit(fuse(train, settings.lda_weight, settings.member_weights), train_labels,
                       settings.plda_shrinkage)


def cohort_for(train: FusionInputs, train_labels: np.ndarray, lda_weight: float,
               member_weights: list[float] | None = None) -> np.ndarray:
    """Centroids of the training artists in the fused space (AS-norm's cohort)."""
    return artist_centroids(fuse(train, lda_weight, member_weights), train_labels)[1]


def choose_member_weights(val: FusionInputs, val_labels: np.ndarray) -> tuple[list[float], float, float]:
    """(weights, plain nDCG@100, weighted nDCG@100) on validation: one run's weight at a time from MEMBER_WEIGHTS.

    Starts from 1 each (the plain ensemble); a change is kept only when it raises
    validation nDCG@100, so the result never scores below the plain ensemble there.
    """
    weights = [1.0] * len(val.parts)

    def score(w: list[float]) -> float:
        return ndcg_at_k(rank_tracks(fuse(val, 0.0, w), InferenceSettings(rerank_threshold=None)), val_labels)

    plain = best = score(weights)
    if len(weights) < 2:
        return weights, plain, best
    for _ in range(MEMBER_PASSES):
        changed = False
        for i in range(len(weights)):
            for w in MEMBER_WEIGHTS:
                trial = weights[:i] + [w] + weights[i + 1:]
                if w == weights[i] or max(trial) <= 0:
                    continue
                s = score(trial)
                if s > best:
                    best, weights, changed = s, trial, True
        if not changed:
            break
    return weights, plain, best


def calibrate(val: FusionInputs, val_labels: np.ndarray, train: FusionInputs, train_labels: np.ndarray,
              runs: list[str] | None = None, log=None, backends: tuple[str, ...] = BACKENDS) -> InferenceSettings:
    """Choose ensemble weights, fusion weight, back end, AS-norm top-k, expansion depth and rerank threshold
    greedily on validation.

    The back end changes what every later step scores, so the later steps are chosen
    under each back end in `backends` (a chain each) and the PLDA chain is kept only when
    its last validation nDCG@100 beats the cosine chain's (`backends` ("plda",): PLDA
    whether it wins or not, for measuring it).
    """
    off = InferenceSettings(rerank_threshold=None, runs=list(runs or []))
    off.member_weights, off.validation["plain"], best = choose_member_weights(val, val_labels)
    off.validation["members"] = best
    mw = off.member_weights

    def score(s: InferenceSettings, cohort: np.ndarray | None = None, plda: PairLLR | None = None) -> float:
        return ndcg_at_k(rank_tracks(fuse(val, s.lda_weight, mw), s, cohort, plda), val_labels)

    weights = FUSION_WEIGHTS if val.lda is not None else (0.0,)
    for w in weights[1:]:
        trial = score(InferenceSettings(lda_weight=w, rerank_threshold=None))
        if trial > best:
            best, off.lda_weight = trial, w
    off.validation["fusion"] = best
    cohort = cohort_for(train, train_labels, off.lda_weight, mw)
    chains = []
    for backend in backends:
        chain = replace(off, validation=dict(off.validation))
        plda, top = None, best
        if backend == "plda":
            top = _plda_shrinkage(chain, train, train_labels, score)
            plda = plda_for(train, train_labels, chain)
        chain.validation["backend"] = top
        chains.append(_add_ons(chain, top, lambda s, c=cohort, m=plda: score(s, c, m)))
    off = max(chains, key=lambda c: c.validation["rerank"])  # ties: the first (cosine)
    if log is not None:
        log(f"inference settings chosen on validation: ensemble weights {mw}, LDA fusion weight {off.lda_weight}, "
            f"back end {off.backend}, AS-norm top-k "
            f"{off.as_norm_top_k or 'off'}, expansion depth {off.expansion_depth or 'off'}, "
            f"rerank threshold {off.rerank_threshold or 'off'} "
            f"(validation nDCG@100 {off.validation['plain']:.4f} -> {off.validation['rerank']:.4f})")
    return off


def _plda_shrinkage(off: InferenceSettings, train: FusionInputs, train_labels: np.ndarray,
                    score: Callable[..., float]) -> float:
    """Set `off`'s back end to PLDA with the shrinkage of PLDA_SHRINKAGE scoring best on validation; its score."""
    fused = fuse(train, off.lda_weight, off.member_weights)
    trials = []
    for shrinkage in PLDA_SHRINKAGE:
        s = replace(off, backend="plda", plda_shrinkage=shrinkage)
        trials.append((score(s, None, PairLLR.fit(fused, train_labels, shrinkage)), shrinkage))
    top, off.plda_shrinkage = max(trials, key=lambda t: t[0])
    off.backend = "plda"
    return top


def _add_ons(off: InferenceSettings, best: float, score: Callable[[InferenceSettings], float]) -> InferenceSettings:
    """AS-norm top-k, expansion depth, rerank threshold, one after the other, each kept when it raises `best`."""
    for name, grid, key in (("as_norm", AS_NORM_TOP_K, "as_norm_top_k"), ("expansion", EXPANSION_DEPTHS,
                                                                          "expansion_depth"),
                            ("rerank", RERANK_THRESHOLDS, "rerank_threshold")):
        for value in grid[1:]:
            trial = score(replace(off, **{key: value}))
            if trial > best:
                best = trial
                setattr(off, key, value)
        off.validation[name] = best
    return off


def component_scores(inputs: FusionInputs, labels: np.ndarray, settings: InferenceSettings,
                     cohort: np.ndarray | None, plda: PairLLR | None = None) -> dict[str, float]:
    """nDCG@100 after each chosen step in turn: plain, + weights, + fusion, + back end, + AS-norm, + expansion,
    + rerank."""
    off = InferenceSettings(rerank_threshold=None)
    fusion = replace(off, lda_weight=settings.lda_weight)
    backend = replace(fusion, backend=settings.backend, plda_shrinkage=settings.plda_shrinkage)
    as_norm = replace(backend, as_norm_top_k=settings.as_norm_top_k)
    steps = {"plain": off, "members": off, "fusion": fusion, "backend": backend, "as_norm": as_norm,
             "expansion": replace(as_norm, expansion_depth=settings.expansion_depth), "rerank": settings}
    weights = {name: None if name == "plain" else settings.member_weights for name in steps}
    return {name: ndcg_at_k(rank_tracks(fuse(inputs, s.lda_weight, weights[name]), s, cohort, plda), labels)
            for name, s in steps.items()}
