"""The ranking pipeline built from trained runs and the settings saved for them.

Why apart from `search.pipeline`: ranking needs only vectors and a `PipelineState`; this
module is where runs on disk (`artistsim.runs`: checkpoints, front end, settings keyed by
the checkpoints' fingerprints) become an `Embedder` + `Ranker` pair. `predict`, `index
build` and the catalogue all load through `load_pipeline`, so they cannot disagree on
which settings apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from artistsim.data.layout import DataError
from artistsim.embed import Embedder
from artistsim.runs import SETTINGS_DIR, load_settings, save_settings
from artistsim.search.pipeline import InferenceSettings, PipelineState, Ranker


@dataclass
class Pipeline:
    """Embedding (runs, weights, fusion) and ranking (AS-norm, expansion, rerank) of one set of runs."""

    embedder: Embedder
    ranker: Ranker
    state: PipelineState
    saved: bool  # True when the settings came from `evaluate --save-settings`


def saved_state(runs: list[str | Path], warn: Callable[[str], None] | None = None) -> PipelineState | None:
    """The settings saved for exactly these runs as they are now (None: none, or stale)."""
    found = load_settings(list(runs), warn)
    if found is None:
        return None
    where = f"{Path(runs[0]) / SETTINGS_DIR}"
    try:
        state = PipelineState.from_parts(found[0], found[1], where)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{exc}; run `artistsim evaluate --save-settings` again") from None
    weights = state.settings.member_weights
    if weights and (len(weights) != len(runs) or max(weights) <= 0):
        raise DataError(f"{where}: member_weights {weights} do not fit its {len(runs)} runs (one weight >= 0 "
                        f"per run, one above 0); run `artistsim evaluate --save-settings` again")
    return state


def load_pipeline(runs: list[str | Path], device: str | torch.device | None = None, window: int | None = None,
                  hop: int = 5, use_saved: bool = True, default: InferenceSettings | None = None,
                  warn: Callable[[str], None] | None = None) -> Pipeline:
    """The runs with their saved settings (or `default`, the seed's, when none apply)."""
    state = saved_state(runs, warn) if use_saved else None
    saved = state is not None
    if state is None:
        state = PipelineState(default if default is not None else InferenceSettings())
    st = state.settings
    embedder = Embedder.load(list(runs), device, window, hop, st.member_weights or None, state.lda, st.lda_weight)
    return Pipeline(embedder, Ranker(state), state, saved)


def save_state(runs: list[str | Path], state: PipelineState) -> Path:
    """Save `state` for exactly these runs (keyed by their checkpoints' fingerprints)."""
    return save_settings(list(runs), state.settings.to_record(), state.arrays())
