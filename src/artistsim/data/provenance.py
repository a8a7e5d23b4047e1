"""Feature provenance: which front end made a data directory's frames.

Why a record: a model trained on one front end's frames (the competition's CNN
embeddings, `featurize`'s DSP descriptor, a pretrained tagger's embeddings) answers
nonsense on another's, and nothing in a (D, T) array says which it is. `featurize`
writes `frontend.json` beside the meta files; `train` copies it into the run; a
catalogue records its runs' front end and takes audio only when `featurize` would apply
that same front end.

A data directory without the file holds the competition's features (the released data
has none): `COMPETITION`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from artistsim.atomic import atomic_write_text
from artistsim.config_check import ConfigError, build, ranged

FRONTEND_FILE = "frontend.json"


class ProvenanceError(ValueError):
    """A provenance record that cannot be read, or two front ends that do not match."""


@dataclass(frozen=True)
class Frontend:
    """A front end's identity: what must match for two sets of frames to be comparable.

    `name` and `version` identify the computation; `params` hold whatever else changes
    the numbers (sample rate, window, hop, layer); `dim` is the frame dimension D.
    """

    name: str
    version: str = "1"
    dim: int = ranged(512, "1 <= x <= 65536")
    params: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, str, int, str]:
        """What two front ends must share to be the same (params compared as canonical JSON)."""
        return (self.name, self.version, self.dim, json.dumps(self.params, sort_keys=True))

    def same_as(self, other: Frontend) -> bool:
        return self.key() == other.key()

    def label(self) -> str:
        """A short human-readable name, e.g. `dsp v1 (512-d)`."""
        return f"{self.name} v{self.version} ({self.dim}-d)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Frontend:
        """A record read from JSON, every field checked by its type hint (one-line error naming `where`)."""
        try:
            return build(cls, d, where)
        except ConfigError as exc:
            raise ProvenanceError(str(exc)) from None


# The released competition data: a CNN's 512-d embeddings of ~1.5 s chunks, no record.
COMPETITION = Frontend("competition-cnn", "1", 512, {})


def read_frontend(data_dir: str | Path) -> Frontend:
    """The front end recorded in `data_dir` (COMPETITION when no record exists)."""
    path = Path(data_dir) / FRONTEND_FILE
    if not path.is_file():
        return COMPETITION
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ProvenanceError(f"{path}: not a readable JSON front-end record") from None
    return Frontend.from_dict(d, str(path))


def write_frontend(data_dir: str | Path, frontend: Frontend) -> Path:
    """Record `frontend` in `data_dir` atomically (rewritten only when it changed)."""
    path = Path(data_dir) / FRONTEND_FILE
    text = json.dumps(frontend.to_dict(), indent=2, sort_keys=True) + "\n"
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)
    return path


def require_same(expected: Frontend, found: Frontend, what: str) -> None:
    """Raise a one-line ProvenanceError when `found` is not `expected` (naming both)."""
    if not expected.same_as(found):
        raise ProvenanceError(f"{what}: features of front end {found.label()} but the runs were trained on "
                              f"{expected.label()}")
