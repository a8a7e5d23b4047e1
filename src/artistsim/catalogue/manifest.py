"""manifest.json: what a catalogue is now, read with every field checked.

The manifest is the one file a reader trusts to find everything else, so a hand-edited
or damaged one (a JSON array, `null`, `generation` as a string, a run without `sha256`,
`calibration` as a string, a segment name climbing into another catalogue) must be
refused when read, with one line naming manifest.json and the field, never surface as a
TypeError three calls later.

`files` records, for every file the manifest names, its size and SHA-256 as written
(`file_record`), so damage after the fact (a truncated segment, a replaced index) is
found by `artistsim index check` and before `index add` commits on top of it
(`artistsim.catalogue.integrity`). Catalogues written before `files` existed still open;
what has no record is checked by what it holds (shapes, dtypes, sizes that agree).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artistsim.data.errors import DataError
from artistsim.data.paths import inside
from artistsim.runs import file_sha256

MANIFEST = "manifest.json"
FORMAT = 1
INDEX_KINDS = ("auto", "flat", "hnsw", "ivf", "ivfpq")
SEGMENT_FILES = ("embeddings.npy", "trackids.npy", "artists.npy")
STATS_FILE = "stats.npy"


class CatalogueError(ValueError):
    """A catalogue that cannot be opened or changed as asked; the message says why."""


def file_record(path: Path) -> dict[str, Any]:
    """What the manifest keeps of a file it names: size in bytes and SHA-256."""
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


@dataclass
class Manifest:
    """What manifest.json holds; `runs` carry each run's path and fingerprint."""

    generation: int
    dim: int
    runs: list[dict[str, Any]]
    embed: dict[str, Any]
    index: dict[str, Any]  # kind, requested, file (or None), params
    main: str
    tail: list[str] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    # the ranking pipeline: {"settings": {...}, "arrays": "pipeline-000001.npz"} (None: plain cosine)
    pipeline: dict[str, Any] | None = None
    frontend: dict[str, Any] | None = None  # the front end the runs were trained on (provenance record)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> size, sha256
    names: str | None = None  # names-GENERATION.json: artist names, source files (`catalogue.names`)

    def to_json(self) -> str:
        d = {"format": FORMAT, **self.__dict__}
        return json.dumps(d, indent=2) + "\n"

    def segments(self) -> list[str]:
        return [self.main, *self.tail]

    def named_files(self, root: Path) -> list[str]:
        """Every file this generation reads, relative to the catalogue's folder `root`.

        A segment's stats.npy (AS-norm pipelines only) counts when recorded or present.
        """
        names = [f"{s}/{f}" for s in self.segments() for f in SEGMENT_FILES]
        stats = [f"{s}/{STATS_FILE}" for s in self.segments()]
        names += [n for n in stats if n in self.files or (root / n).is_file()]
        if self.index.get("file"):
            names.append(self.index["file"])
        if self.pipeline and self.pipeline.get("arrays"):
            names.append(self.pipeline["arrays"])
        if self.names:
            names.append(self.names)
        return names

    def with_records(self, root: Path) -> Manifest:
        """This manifest recording every file it names: records kept, new files (and those of a
        catalogue written before records existed, verified by the caller) hashed now."""
        files = {rel: self.files.get(rel) or file_record(root / rel) for rel in self.named_files(root)}
        return Manifest(**{**self.__dict__, "files": files})

    @classmethod
    def read(cls, root: Path) -> Manifest:
        path = root / MANIFEST
        if not path.is_file():
            raise CatalogueError(f"{root}: not a catalogue (no {MANIFEST}); build one with `artistsim index build`")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise CatalogueError(f"{path}: not valid JSON ({type(exc).__name__})") from None
        return parse_manifest(d, path, root)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _problem(path: Path, field_name: str, what: str) -> CatalogueError:
    return CatalogueError(f"{path}: field {field_name!r} {what}")


def parse_manifest(d: Any, path: Path, root: Path) -> Manifest:
    """The Manifest of a parsed manifest.json, after checking every field's type and range."""
    if not isinstance(d, dict):
        raise CatalogueError(f"{path}: expected a JSON object, got {type(d).__name__ if d is not None else 'null'}")
    if d.get("format") != FORMAT:
        raise _problem(path, "format", f"must be {FORMAT} (an unknown catalogue format)")
    known = set(Manifest.__dataclass_fields__) | {"format"}
    extra = sorted(str(k)[:40] for k in d if k not in known)
    if extra:
        raise CatalogueError(f"{path}: unexpected field(s) {extra}")
    for name in ("generation", "dim", "runs", "embed", "index", "main"):
        if name not in d:
            raise _problem(path, name, "is missing")
    for name in ("generation", "dim"):
        if not _is_int(d[name]) or d[name] < 1:
            raise _problem(path, name, "must be a positive integer")
    _check_runs(d["runs"], path)
    _check_embed(d["embed"], path)
    _check_index(d["index"], path)
    if not isinstance(d["main"], str) or not d["main"]:
        raise _problem(path, "main", "must be a segment name")
    tail = d.get("tail", [])
    if not isinstance(tail, list) or not all(isinstance(t, str) and t for t in tail):
        raise _problem(path, "tail", "must be a list of segment names")
    cal = d.get("calibration")
    if cal is not None and (not isinstance(cal, dict) or not _is_number(cal.get("threshold"))):
        raise _problem(path, "calibration", "must be null or an object with a numeric threshold")
    pipeline = d.get("pipeline")
    if pipeline is not None and (not isinstance(pipeline, dict) or not isinstance(pipeline.get("settings", {}), dict)
                                 or not isinstance(pipeline.get("arrays", ""), (str, type(None)))):
        raise _problem(path, "pipeline", "must be null or an object with settings and an arrays file name")
    if d.get("frontend") is not None and not isinstance(d["frontend"], dict):
        raise _problem(path, "frontend", "must be null or an object")
    if d.get("names") is not None and (not isinstance(d["names"], str) or not d["names"]):
        raise _problem(path, "names", "must be null or a file name")
    files = d.get("files", {})
    if not isinstance(files, dict) or not all(
            isinstance(r, dict) and _is_int(r.get("size")) and isinstance(r.get("sha256"), str) for r in files.values()):
        raise _problem(path, "files", "must map file names to {size, sha256}")
    manifest = Manifest(**{k: v for k, v in d.items() if k != "format"})
    for name, rel in [("main", manifest.main), *(("tail", t) for t in manifest.tail),
                      *((("index.file", manifest.index["file"]),) if manifest.index.get("file") else ()),
                      *((("pipeline.arrays", manifest.pipeline["arrays"]),)
                        if manifest.pipeline and manifest.pipeline.get("arrays") else ()),
                      *((("names", manifest.names),) if manifest.names else ())]:
        try:
            inside(root, rel, f"{path}: field {name!r}")
        except DataError as exc:
            raise CatalogueError(str(exc)) from None
    return manifest


def _check_runs(runs: Any, path: Path) -> None:
    if not isinstance(runs, list):
        raise _problem(path, "runs", "must be a list")
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            raise _problem(path, f"runs[{i}]", "must be an object")
        for key in ("path", "checkpoint", "sha256", "model"):
            if not isinstance(run.get(key), str):
                raise _problem(path, f"runs[{i}].{key}", "is missing or not a string")


def _check_embed(embed: Any, path: Path) -> None:
    if not isinstance(embed, dict):
        raise _problem(path, "embed", "must be an object")
    window, hop = embed.get("window"), embed.get("hop", 5)
    if window is not None and (not _is_int(window) or window < 1):
        raise _problem(path, "embed.window", "must be null or a positive integer")
    if not _is_int(hop) or hop < 1:
        raise _problem(path, "embed.hop", "must be a positive integer")


def _check_index(index: Any, path: Path) -> None:
    if not isinstance(index, dict):
        raise _problem(path, "index", "must be an object")
    if index.get("kind") not in INDEX_KINDS[1:]:
        raise _problem(path, "index.kind", f"must be one of {INDEX_KINDS[1:]}")
    if index.get("requested") not in INDEX_KINDS:
        raise _problem(path, "index.requested", f"must be one of {INDEX_KINDS}")
    if index.get("file") is not None and (not isinstance(index["file"], str) or not index["file"]):
        raise _problem(path, "index.file", "must be null or a file name")
    if (index.get("file") is None) != (index["kind"] == "flat"):
        raise _problem(path, "index.file", f"must be {'null' if index['kind'] == 'flat' else 'a file name'} "
                                           f"for index kind {index['kind']!r}")
    if not isinstance(index.get("params", {}), dict):
        raise _problem(path, "index.params", "must be an object")


def verify_files(root: Path, manifest: Manifest, checksums: bool) -> list[str]:
    """Problems with the files a generation names: missing, another size, (with `checksums`)
    other bytes than recorded. Files without a record are only checked for presence."""
    problems = []
    for rel in manifest.named_files(root):
        path = root / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        record = manifest.files.get(rel)
        if record is None:
            continue
        size = path.stat().st_size
        if size != record["size"]:
            problems.append(f"{path}: {size} bytes, {MANIFEST} records {record['size']} (truncated or replaced)")
        elif checksums and file_sha256(path) != record["sha256"]:
            problems.append(f"{path}: SHA-256 differs from the one {MANIFEST} records (damaged or replaced)")
    return problems
