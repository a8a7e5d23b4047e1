"""Embedding tracks for a catalogue: the runs as an ensemble, in-memory features, torchrun shards.

Why its own embedder: the catalogue's space is fixed by the runs it was built with and
their inference settings (full length or windows), so every later add and query must
embed the same way. `Embedder` holds the loaded runs and those settings, and the
manifest records them with each checkpoint's SHA-256 so a changed run is caught.

Under torchrun (`torchrun --nproc_per_node N -m artistsim index build ...`) each rank
embeds every N-th track, rank 0 gathers the shares in order and writes the catalogue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artistsim.catalogue.enrol import DEFAULT_METHOD, calibrate
from artistsim.catalogue.snapshot import file_sha256, labelled, open_snapshot
from artistsim.catalogue.store import UNKNOWN_ARTIST, CatalogueError, Manifest, Part, create, set_calibration
from artistsim.data.layout import FEATURE_DIM, DataError, check_shape
from artistsim.data.splits import load_split
from artistsim.embed import embed_full, embed_windows, ensemble, load_run, resolve_device
from artistsim.evaluation.inference import load_settings

CHECKPOINT = "best.pt"


class ArraySource:
    """A FeatureSource over (512, T) arrays held in memory (uploads, --features files)."""

    def __init__(self, tracks: list[np.ndarray]):
        self.lengths = np.array([t.shape[1] for t in tracks], dtype=np.int64)
        width = int(self.lengths.max()) if len(tracks) else 1
        dim = tracks[0].shape[0] if len(tracks) else FEATURE_DIM  # D of the tracks themselves
        self.frames = np.zeros((len(tracks), width, dim), dtype=np.float32)
        for i, t in enumerate(tracks):  # one copy per track, at most a few per request
            self.frames[i, : t.shape[1]] = t.T

    def gather(self, rows: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        return self.frames[np.asarray(rows)[:, None], frame_idx]


def check_features(arr: Any, where: str) -> np.ndarray:
    """A (512, T) float32 track, 1 <= T <= 81 and finite; DataError naming `where` otherwise."""
    try:
        x = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{where}: features must be a numeric array (512, T)") from None
    check_shape(tuple(x.shape), where)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: {int((~np.isfinite(x)).sum())} NaN/Inf value(s)")
    return x


def run_record(run_dir: str | Path, cfg: Any) -> dict[str, Any]:
    """What the manifest keeps of a run: where it is and the fingerprint of its checkpoint."""
    run_dir = Path(run_dir).resolve()
    return {"path": str(run_dir), "checkpoint": CHECKPOINT, "sha256": file_sha256(run_dir / CHECKPOINT),
            "model": cfg.model.kind, "embedding_dim": cfg.model.embedding_dim}


@dataclass
class Embedder:
    """The catalogue's runs, loaded, and how they embed (window / hop, None = full length)."""

    models: list[torch.nn.Module]
    runs: list[dict[str, Any]]
    window: int | None
    hop: int
    device: torch.device
    weights: list[float] | None = None  # each run's weight in the ensemble (None: 1 each)

    @classmethod
    def load(cls, runs: list[str | Path], window: int | None = None, hop: int = 5,
             device: str | None = None, weights: list[float] | None = None) -> Embedder:
        """The runs, weighted by `weights`, or else as `evaluate` chose on validation for exactly these runs.

        Why the saved weights: the catalogue's space is then the one `predict` ranks in
        (a run that only lowered validation nDCG@100 is weighted down or left out).
        """
        dev = resolve_device(device)
        models, records = [], []
        for run in runs:
            model, cfg = load_run(run, dev, CHECKPOINT.removesuffix(".pt"))
            models.append(model)
            records.append(run_record(run, cfg))
        if weights is None and len(runs) > 1:
            saved = load_settings(Path(runs[0]), [Path(r).name for r in runs])
            weights = (saved[0].member_weights or None) if saved is not None else None
        return cls(models, records, window, hop, dev, weights)

    @classmethod
    def for_manifest(cls, manifest: Manifest, device: str | None = None) -> Embedder:
        """The embedder a catalogue was built with (its runs must still match their fingerprints)."""
        weights = manifest.embed.get("weights") or [1.0] * len(manifest.runs)  # built before weights: 1 each
        if (not isinstance(weights, list) or len(weights) != len(manifest.runs)
                or not all(isinstance(w, (int, float)) and w >= 0 for w in weights) or max(weights) <= 0):
            raise CatalogueError(f"manifest.json: embed.weights {weights!r} do not fit its {len(manifest.runs)} "
                                 f"runs (one number >= 0 per run, one above 0)")
        emb = cls.load([r["path"] for r in manifest.runs], manifest.embed.get("window"),
                       manifest.embed.get("hop", 5), device, [float(w) for w in weights])
        for old, new in zip(manifest.runs, emb.runs):
            if old["sha256"] != new["sha256"]:
                raise CatalogueError(f"run {old['path']} changed since the catalogue was built; rebuild it")
        return emb

    @property
    def settings(self) -> dict[str, Any]:
        return {"window": self.window, "hop": self.hop, "ensemble": len(self.models) > 1,
                "weights": self.weights or [1.0] * len(self.models)}

    def embed(self, source: Any, rows: np.ndarray, progress: bool | None = False) -> np.ndarray:
        """L2-normalised (ensembled) embeddings of `rows` of a feature source."""
        embs = []
        for model in self.models:
            if self.window:
                embs.append(embed_windows(model, source, rows, self.device, self.window, self.hop, progress=progress))
            else:
                embs.append(embed_full(model, source, rows, self.device, progress=progress))
        return ensemble(embs, weights=self.weights) if len(embs) > 1 else embs[0]

    def embed_arrays(self, tracks: list[np.ndarray]) -> np.ndarray:
        if not tracks:
            return np.empty((0, 0), dtype=np.float32)
        return self.embed(ArraySource(tracks), np.arange(len(tracks)))


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
    """Embeddings, trackids and artists (-1 when unknown) of the splits' tracks (None off rank 0)."""
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
                    overwrite: bool = False, progress: bool | None = None, far: float = 0.01) -> Manifest | None:
    """Embed the splits with the runs and write a new catalogue (on rank 0; None on other ranks).

    With at least 4 labelled artists, identification is calibrated for the false-accept
    rate `far` and the calibration recorded in the manifest.
    """
    if (Path(root) / "manifest.json").exists() and not overwrite:
        raise CatalogueError(f"{root}: a catalogue exists already; use `index add`, or --overwrite")
    embedder = Embedder.load(runs, window, hop, device)
    try:
        part = dataset_part(embedder, data_dir, splits, progress)
    finally:
        _leave_group()
    if part is None:
        return None
    if len(part) > 0 and len(np.unique(part.trackids)) != len(part):
        raise CatalogueError(f"{data_dir}: the splits {splits} share trackids; build from one of them")
    manifest = create(root, part, embedder.runs, embedder.settings, index=index, overwrite=overwrite)
    return calibrate_catalogue(root, far) or manifest


def calibrate_catalogue(root: str | Path, far: float = 0.01, method: str = DEFAULT_METHOD) -> Manifest | None:
    """Calibrate identification (`method`, see `catalogue.enrol`) on the labelled tracks and record it; None when too few."""
    snap = open_snapshot(root)
    rows = labelled(snap)
    if len(np.unique(snap.artists()[rows])) < 4:
        return None
    return set_calibration(root, calibrate(snap.vectors(rows), snap.artists()[rows], far=far, method=method))

