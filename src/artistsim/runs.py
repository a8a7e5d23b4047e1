"""The run folder's one owner: checkpoint format and version, fingerprints, the features a
run was trained on, and the inference settings chosen for a set of runs.

A run folder holds `best.pt` / `last.pt` (written by training through `write_checkpoint`),
`metrics.jsonl`, `frontend.json` (the front end of the data it was trained on, copied by
`train`; see `artistsim.data.provenance`) and, once `evaluate --save-settings` ran,
`settings/<key>.json` + `.npz`: the inference settings chosen on validation for one
ordered set of runs, keyed by their checkpoints' SHA-256.

Why keyed by fingerprints, not by folder names: a run retrained in place keeps its name;
settings (ensemble weights, an LDA map, an AS-norm cohort) chosen for the old weights
would be applied to the new ones without a word. A key made of the checkpoints' bytes
cannot match stale settings; `load_settings` says when it finds some and ignores them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artistsim.atomic import atomic_path, atomic_write_text
from artistsim.data.layout import DataError
from artistsim.data.provenance import FRONTEND_FILE, Frontend, read_frontend, require_same, write_frontend

# Version of the checkpoint's layout (its keys and what they hold). Bump it when a change
# makes older readers misread new checkpoints or this reader misread old ones.
CHECKPOINT_VERSION = 1
CHECKPOINT_KEYS = ("config", "model")
BEST = "best.pt"
SETTINGS_DIR = "settings"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save `state` (plain data and tensors) with this format's version, atomically."""
    with atomic_path(Path(path), suffix=".pt") as tmp:
        torch.save({**state, "version": CHECKPOINT_VERSION}, tmp)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint safely (`weights_only=True`: tensors and plain data only), version checked.

    A truncated, garbage or foreign file, or one of another format version, is a
    DataError naming it, not torch's traceback.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch's reader fails on garbage in many ways (IndexError, EOFError ...)
        raise DataError(f"{path}: not a readable checkpoint (truncated, corrupt or not written by artistsim; "
                        f"{type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CHECKPOINT_KEYS):
        raise DataError(f"{path}: not an artistsim checkpoint (no {'/'.join(CHECKPOINT_KEYS)} entries)")
    version = ckpt.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DataError(f"{path}: checkpoint has no format version; retrain it with this artistsim")
    if version > CHECKPOINT_VERSION:
        raise DataError(f"{path}: checkpoint format {version} is newer than this artistsim reads "
                        f"({CHECKPOINT_VERSION}); upgrade artistsim")
    if version < CHECKPOINT_VERSION:
        raise DataError(f"{path}: checkpoint format {version} is older than this artistsim reads "
                        f"({CHECKPOINT_VERSION}); retrain the run")
    return ckpt


# --------------------------------------------------------------------------- front end


def record_frontend(run_dir: str | Path, data_dir: str | Path) -> Frontend:
    """Copy the front end of `data_dir`'s features into the run (train calls this first)."""
    frontend = read_frontend(data_dir)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_frontend(run_dir, frontend)
    return frontend


def run_frontend(run_dir: str | Path) -> Frontend:
    """The front end a run was trained on (the competition's when the run predates the record)."""
    return read_frontend(run_dir)


def common_frontend(runs: list[str | Path]) -> Frontend:
    """The one front end all `runs` were trained on; a DataError naming two that differ."""
    fronts = [run_frontend(r) for r in runs]
    for run, fe in zip(runs[1:], fronts[1:]):
        if not fe.same_as(fronts[0]):
            raise DataError(f"runs {runs[0]} and {run} were trained on different front ends "
                            f"({fronts[0].label()} and {fe.label()}); they cannot share one embedding space")
    return fronts[0]


def check_data_frontend(runs: list[str | Path], data_dir: str | Path) -> Frontend:
    """The runs' front end, when `data_dir`'s features were made by it; else a one-line ProvenanceError.

    Why: a run learnt the numbers of one front end; another's frames (of the same D, or
    a folder without a record: the competition's) would be embedded without complaint
    and ranked as noise. `embed`, `evaluate` and `predict` call this before any work.
    """
    expected = common_frontend(list(runs))
    require_same(expected, read_frontend(data_dir), str(data_dir))
    return expected


# --------------------------------------------------------------------------- settings


def run_fingerprints(runs: list[str | Path]) -> list[str]:
    """SHA-256 of each run's best checkpoint, in order."""
    return [file_sha256(Path(r) / BEST) for r in runs]


def settings_key(fingerprints: list[str]) -> str:
    """The key of one ordered set of runs: a hash of their checkpoints' hashes."""
    return hashlib.sha256("\n".join(fingerprints).encode()).hexdigest()[:24]


def save_settings(runs: list[str | Path], record: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Save settings for exactly these runs (their fingerprints) in the first run's settings folder."""
    prints = run_fingerprints(runs)
    folder = Path(runs[0]) / SETTINGS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    key = settings_key(prints)
    with atomic_path(folder / f"{key}.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    body = {"runs": [{"name": Path(r).name, "sha256": s} for r, s in zip(runs, prints)], "settings": record}
    path = folder / f"{key}.json"
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path


def load_settings(runs: list[str | Path], warn=None) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """The settings saved for exactly these runs as they are now, or None.

    Settings saved for runs of the same names whose checkpoints have changed since (a run
    retrained in place) are stale: `warn` hears of them once and they are not applied.
    """
    folder = Path(runs[0]) / SETTINGS_DIR
    if not folder.is_dir():
        return None
    key = settings_key(run_fingerprints(runs))
    path = folder / f"{key}.json"
    if not path.is_file():
        if warn is not None and _stale(folder, [Path(r).name for r in runs]):
            warn(f"{folder}: inference settings saved for these runs are stale (a checkpoint changed since "
                 f"`evaluate --save-settings`); running without them")
        return None
    try:
        body = json.loads(path.read_text())
        with np.load(folder / f"{key}.npz", allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, json.JSONDecodeError):
        raise DataError(f"{path}: saved inference settings unreadable; run `artistsim evaluate --save-settings` "
                        f"again") from None
    if not isinstance(body, dict) or not isinstance(body.get("settings"), dict):
        raise DataError(f"{path}: saved inference settings malformed; run `artistsim evaluate --save-settings` "
                        f"again")
    return body["settings"], arrays


def _stale(folder: Path, names: list[str]) -> bool:
    """True when some saved settings name exactly these runs (but other checkpoints)."""
    for path in folder.glob("*.json"):
        try:
            body = json.loads(path.read_text())
            if [r["name"] for r in body["runs"]] == names:
                return True
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return False


__all__ = ["BEST", "CHECKPOINT_VERSION", "FRONTEND_FILE", "check_data_frontend", "common_frontend", "file_sha256", "load_checkpoint",
           "load_settings", "record_frontend", "run_fingerprints", "run_frontend", "save_settings",
           "settings_key", "write_checkpoint"]
