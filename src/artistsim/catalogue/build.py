"""Embedding tracks for a catalogue through the ranking pipeline, and building one.

Why the pipeline: a catalogue answers "which tracks are by this track's artist?" for a
music service, and must answer exactly as `predict` does for the same runs. It is built
through `artistsim.search.loader.load_pipeline` (the runs, the settings `evaluate
--save-settings` saved for them) and stores what ranking needs in its manifest
generation: the settings, the LDA map and AS-norm cohort (`pipeline-*.npz`), each row's
cohort statistics, the runs' fingerprints and their front end. Every later add, query
and audio upload embeds and ranks the same way.

Under torchrun (`torchrun --nproc_per_node N -m artistsim index build ...`) each rank
embeds every N-th track, rank 0 gathers the shares in order and writes the catalogue.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from artistsim.catalogue.enrol import DEFAULT_METHOD, calibrate
from artistsim.catalogue.snapshot import labelled, open_snapshot
from artistsim.catalogue.store import UNKNOWN_ARTIST, CatalogueError, Manifest, Part, create, set_calibration
from artistsim.data.arrays import check_values
from artistsim.data.layout import FEATURE_DIM, DataError, check_shape
from artistsim.data.provenance import COMPETITION, Frontend, read_frontend, require_same
from artistsim.data.splits import load_split
from artistsim.embed import Embedder
from artistsim.search.loader import load_pipeline
from artistsim.search.pipeline import InferenceSettings, PipelineState


def check_features(arr: Any, where: str, dim: int | None = None) -> np.ndarray:
    """A (D, T) float32 track, 1 <= T <= 81, finite and of plausible magnitude
    (`artistsim.data.arrays.check_values`); DataError naming `where` otherwise."""
    try:
        with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf: reported below
            x = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: features must be a numeric array (D, T)") from None
    if dim is not None and x.ndim == 2 and dim not in x.shape:
        raise DataError(f"{where}: features are {x.shape[0]}-d but the catalogue's runs take {dim}-d frames")
    check_shape(tuple(x.shape), where, FEATURE_DIM if dim is None else dim)
    return check_values(x, where)


def catalogue_frontend(manifest: Manifest) -> Frontend:
    """The front end the catalogue's runs were trained on (the competition's when unrecorded)."""
    if manifest.frontend is None:
        return COMPETITION
    return Frontend.from_dict(manifest.frontend, "manifest.json: frontend")


def pipeline_state(root: str | Path, manifest: Manifest) -> PipelineState:
    """The ranking settings and arrays stored with the catalogue (plain cosine for catalogues without)."""
    rec = manifest.pipeline
    if rec is None:  # built from raw embeddings, or before the pipeline was stored: plain cosine
        return PipelineState(InferenceSettings(rerank_threshold=None))
    where = f"{Path(root) / 'manifest.json'}: pipeline"
    if not isinstance(rec, dict) or not isinstance(rec.get("arrays"), str) or "/" in rec["arrays"]:
        raise CatalogueError(f"{where}: malformed (expected settings and an arrays file name)")
    try:
        with np.load(Path(root) / rec["arrays"], allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        return PipelineState.from_parts(rec.get("settings"), arrays, where)
    except (OSError, ValueError, TypeError) as exc:
        raise CatalogueError(f"{where}: unreadable ({str(exc).splitlines()[0][:200]})") from None


def catalogue_embedder(manifest: Manifest, state: PipelineState, device: str | None = None) -> Embedder:
    """The embedder a catalogue was built with (its runs must still match their fingerprints)."""
    weights = manifest.embed.get("weights") or [1.0] * len(manifest.runs)  # built before weights: 1 each
    if (not isinstance(weights, list) or len(weights) != len(manifest.runs)
            or not all(isinstance(w, (int, float)) and w >= 0 for w in weights) or max(weights) <= 0):
        raise CatalogueError(f"manifest.json: embed.weights {weights!r} do not fit its {len(manifest.runs)} "
                             f"runs (one number >= 0 per run, one above 0)")
    emb = Embedder.load([r["path"] for r in manifest.runs], device, manifest.embed.get("window"),
                        manifest.embed.get("hop", 5), [float(w) for w in weights], state.lda,
                        state.settings.lda_weight)
    for old, new in zip(manifest.runs, emb.runs):
        if old["sha256"] != new["sha256"]:
            raise CatalogueError(f"run {old['path']} changed since the catalogue was built; rebuild it")
    return emb


def with_stats(part: Part, state: PipelineState) -> Part:
    """`part` with each row's AS-norm cohort statistics (when the pipeline uses AS-norm)."""
    return Part(part.embeddings, part.trackids, part.artists, state.row_stats(part.embeddings))


def _world() -> tuple[int, int]:
    """(rank, world size) under torchrun, joining the gloo process group; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), world


def _leave_group() -> None:
    """Leave the torchrun process group this build joined (a clean teardown on every rank)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def embed_sharded(embedder: Embedder, source: Any, n: int, progress: bool | None) -> np.ndarray | None:
    """All n rows embedded, split over torchrun ranks; the whole matrix on rank 0, None elsewhere."""
    rank, world = _world()
    mine = np.arange(rank, n, world)
    part = embedder.embed(source, mine, progress=progress if rank == 0 else False)
    if world == 1:
        return part
    import torch.distributed as dist

    shares: list[Any] = [None] * world if rank == 0 else []
    dist.gather_object(part, shares if rank == 0 else None, dst=0)
    if rank != 0:
        return None
    out = np.empty((n, shares[0].shape[1]), dtype=np.float32)
    for r, share in enumerate(shares):
        out[r::world] = share
    return out


def dataset_part(embedder: Embedder, data_dir: str | Path, splits: list[str],
                 progress: bool | None = None) -> Part | None:
    """Embeddings, trackids and artists (-1 when unknown) of the splits' tracks (None off rank 0).

    The data's front end must be the one the runs were trained on.
    """
    if embedder.frontend is not None:
        require_same(embedder.frontend, read_frontend(data_dir), str(data_dir))
    parts = []
    for split_name in splits:
        split = load_split(data_dir, split_name, progress=progress)
        emb = embed_sharded(embedder, split.source, len(split.meta), progress)
        if emb is None:
            continue
        artists = split.artists if split.artists is not None else np.full(len(split.meta), UNKNOWN_ARTIST)
        parts.append(Part(emb, split.trackids, np.asarray(artists, dtype=np.int64)))
    if not parts:
        return None
    return Part(*(np.concatenate(arrs) for arrs in zip(*((p.embeddings, p.trackids, p.artists) for p in parts))))


def build_catalogue(root: str | Path, data_dir: str | Path, runs: list[str | Path], splits: list[str],
                    index: str = "auto", window: int | None = None, hop: int = 5, device: str | None = None,
                    overwrite: bool = False, progress: bool | None = None, far: float = 0.01,
                    warn=None) -> Manifest | None:
    """Embed the splits with the runs and write a new catalogue (on rank 0; None on other ranks).

    With at least 4 labelled artists, identification is calibrated for the false-accept
    rate `far` and the calibration recorded in the manifest.
    """
    if (Path(root) / "manifest.json").exists() and not overwrite:
        raise CatalogueError(f"{root}: a catalogue exists already; use `index add`, or --overwrite")
    pipe = load_pipeline(runs, device, window, hop, warn=warn)
    if not pipe.saved and warn is not None:
        warn(f"no settings saved for these runs (`artistsim evaluate --save-settings`): the catalogue ranks "
             f"with the seed's defaults (rerank at {pipe.state.settings.rerank_threshold})")
    try:
        part = dataset_part(pipe.embedder, data_dir, splits, progress)
    finally:
        _leave_group()
    if part is None:
        return None
    if len(part) > 0 and len(np.unique(part.trackids)) != len(part):
        raise CatalogueError(f"{data_dir}: the splits {splits} share trackids; build from one of them")
    state = pipe.state
    manifest = create(root, with_stats(part, state), pipe.embedder.runs, pipe.embedder.settings, index=index,
                      overwrite=overwrite, pipeline=(state.settings.to_record(), state.arrays()),
                      frontend=pipe.embedder.frontend.to_dict(), backend=state.backend)
    return calibrate_catalogue(root, far) or manifest


def calibrate_catalogue(root: str | Path, far: float = 0.01, method: str = DEFAULT_METHOD) -> Manifest | None:
    """Calibrate identification (`method`, see `catalogue.enrol`) on the labelled tracks and record it; None when too few."""
    snap = open_snapshot(root)
    rows = labelled(snap)
    if len(np.unique(snap.artists()[rows])) < 4:
        return None
    return set_calibration(root, calibrate(snap.vectors(rows), snap.artists()[rows], far=far, method=method))

