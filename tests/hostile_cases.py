"""Issue 20's batch fault matrix as data: hostile inputs x verbs x the outcome every one must have.

Each `Case` damages a fresh copy of one tiny dataset, catalogue and run (a `Workspace`),
returns the command line to run, and names what the one error line must hold. The
promise checked for every row (tests/test_hostile_input.py): exit status 2, exactly one
line `artistsim VERB: error: ...` holding each needle, no traceback, none of the
`secret` strings planted in files the verb must not echo, and nothing written: the
workspace's files are byte-for-byte what they were before the command.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SECRET = "SECRET-root:$6$hash:19000"


@dataclass
class Workspace:
    """One case's copies: a dataset, a flat and an HNSW catalogue over it, a run, a good features file."""

    root: Path
    data: Path
    cat: Path
    hnsw: Path
    run: Path
    feats: Path
    secret: Path  # a file outside every folder, holding SECRET

    def npy(self, name: str, arr: np.ndarray) -> Path:
        path = self.root / name
        np.save(path, arr, allow_pickle=arr.dtype.hasobject)
        return path

    def raw(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path

    def manifest(self, cat: Path | None = None, **fields) -> Path:
        """Rewrite a catalogue's manifest.json with `fields` replaced (value `...` deletes)."""
        path = (cat or self.cat) / "manifest.json"
        d = json.loads(path.read_text())
        for k, v in fields.items():
            if v is ...:
                d.pop(k, None)
            else:
                d[k] = v
        path.write_text(json.dumps(d))
        return path

    def tone_file(self, name: str, seconds: float = 3.0, rate: int = 16_000) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
        return path

    def featurize_manifest(self, rows: list[str], header: str = "path") -> Path:
        folder = self.root / "music"
        folder.mkdir(exist_ok=True)
        self.tone_file("music/a.wav")
        path = folder / "manifest.tsv"
        path.write_text("\n".join([header, *rows]) + "\n")
        return path


@dataclass(frozen=True)
class Case:
    """One hostile input: `argv(ws)` plants it and returns the command line; the error line holds `needles`."""

    name: str
    verb: str  # as the error line names it: "query", "index", "index build" (a usage error) ...
    argv: Callable[[Workspace], list]
    needles: Callable[[Workspace], tuple[str, ...]] = lambda ws: ()


def after(_planted: object, argv: list) -> list:
    """`argv`, once the damage (an expression evaluated as the argument) is planted."""
    return argv


def _seg(ws: Workspace, name: str = "embeddings.npy", cat: Path | None = None) -> Path:
    c = cat or ws.cat
    return c / json.loads((c / "manifest.json").read_text())["main"] / name


def _damage(path: Path, how: str) -> Path:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "missing":
        path.unlink()
    return path


def _float64_segment(ws: Workspace) -> list:
    seg = _seg(ws)
    np.save(seg, np.load(seg).astype(np.float64))
    return ["query", ws.cat, "--features", ws.feats]


def _link(ws: Workspace, at: str, target: Path) -> Path:
    path = ws.root / at
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def _corrupt_middle_ogg(ws: Workspace) -> Path:
    path = ws.tone_file("corrupt.ogg", seconds=8.0, rate=44_100)
    data = bytearray(path.read_bytes())
    n = len(data)
    data[n // 3 : 2 * n // 3] = np.random.default_rng(0).integers(0, 256, 2 * n // 3 - n // 3, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _bad_test_meta(ws: Workspace) -> list:
    meta = ws.data / "test_meta.tsv"
    lines = meta.read_text().splitlines()
    lines[2] = "99999999999999999999\t" + lines[2].split("\t")[1]
    meta.write_text("\n".join(lines) + "\n")
    return ["pack", ws.data]


def _secret_header(ws: Workspace) -> list:
    (ws.data / "train_meta.tsv").unlink()
    (ws.data / "train_meta.tsv").symlink_to(ws.secret)
    return ["pack", ws.data, "--split", "train"]


TRACKID_20 = "99999999999999999999"
CASES: list[Case] = [
    # ---- ids: one check for every id that enters (artistsim.data.ids)
    Case("query_trackid_beyond_int64", "query", lambda ws: ["query", ws.cat, "--trackid", TRACKID_20],
         lambda ws: ("--trackid", "2^63")),
    Case("query_negative_trackid", "query", lambda ws: ["query", ws.cat, "--trackid", "-5"],
         lambda ws: ("--trackid", "non-negative")),
    Case("index_add_negative_trackid", "index add",
         lambda ws: ["index", "add", ws.cat, "--features", ws.feats, "--trackid", "-7"], lambda ws: ("non-negative",)),
    Case("index_add_huge_artist", "index add",
         lambda ws: ["index", "add", ws.cat, "--features", ws.feats, "--artist", "1" + "0" * 30],
         lambda ws: ("--artist", "2^63")),
    Case("index_add_file_named_as_negative_trackid", "index",
         lambda ws: ["index", "add", ws.cat, "--features", ws.npy("-3.npy", np.load(ws.feats))],
         lambda ws: ("-3.npy", "not a trackid")),
    *(Case(f"featurize_manifest_trackid_{label}", "featurize",
           lambda ws, v=value: ["featurize", ws.featurize_manifest([f"a.wav\t{v}"], "path\ttrackid"), ws.root / "out"],
           lambda ws, r=reason: ("manifest.tsv line 2: trackid", r))
      for label, value, reason in (("1e3", "1e3", "plain integer"), ("inf", "inf", "plain integer"),
                                   ("2_pow_63", str(2**63), "2^63"), ("negative", "-1", "non-negative"))),
    Case("pack_meta_trackid_beyond_int64", "pack", _bad_test_meta, lambda ws: ("test_meta.tsv", "line 3", "64-bit")),
    # ---- arrays: one checked loader (artistsim.data.arrays)
    *(Case(f"{verb}_zero_byte_features", verb.split()[0],
           lambda ws, v=verb: [*v.split(), ws.cat, "--features", ws.raw("1234.npy", b"")],
           lambda ws: ("1234.npy", "0 bytes"))
      for verb in ("query", "index add", "identify")),
    *(Case(f"{verb}_features_of_absurd_magnitude", verb.split()[0],
           lambda ws, v=verb: [*v.split(), ws.cat, "--features", ws.npy("1235.npy", np.full((512, 20), 3e38, np.float32))],
           lambda ws: ("1235.npy", "magnitude"))
      for verb in ("query", "index add", "identify")),
    Case("query_truncated_features", "query",
         lambda ws: ["query", ws.cat, "--features", _damage(ws.npy("1236.npy", np.load(ws.feats)), "truncated")],
         lambda ws: ("1236.npy", "truncated")),
    Case("query_pickled_features", "query",
         lambda ws: ["query", ws.cat, "--features", ws.npy("1237.npy", np.array([{"a": 1}], dtype=object))],
         lambda ws: ("1237.npy", "pickled")),
    Case("query_catalogue_zero_byte_embeddings", "query",
         lambda ws: after(_damage(_seg(ws), "empty"), ["query", ws.cat, "--features", ws.feats]),
         lambda ws: ("embeddings.npy", "0 bytes")),
    Case("query_catalogue_float64_embeddings", "query", _float64_segment, lambda ws: ("embeddings.npy", "float64")),
    # ---- index add builds only on an intact generation (sizes and SHA-256 in manifest.json)
    *(Case(f"index_add_on_{how}_segment", "index",
           lambda ws, h=how, f=f: after(_damage(_seg(ws, f), h), ["index", "add", ws.cat, "--features", ws.feats]),
           lambda ws, f=f: (f, "catalogue damaged", "nothing was added"))
      for how, f in (("truncated", "embeddings.npy"), ("missing", "trackids.npy"), ("garbage", "artists.npy"))),
    Case("index_add_on_garbage_faiss_index", "index",
         lambda ws: after(_damage(next(ws.hnsw.glob("index-*.faiss")), "garbage"),
                          ["index", "add", ws.hnsw, "--features", ws.feats]),
         lambda ws: (".faiss", "SHA-256", "nothing was added")),
    Case("index_add_on_missing_faiss_index", "index",
         lambda ws: after(_damage(next(ws.hnsw.glob("index-*.faiss")), "missing"),
                          ["index", "add", ws.hnsw, "--features", ws.feats]),
         lambda ws: (".faiss", "missing", "nothing was added")),
    Case("query_faiss_index_replaced_by_a_foreign_file", "query",
         lambda ws: after(shutil.copy(ws.secret, next(ws.hnsw.glob("index-*.faiss"))),
                          ["query", ws.hnsw, "--features", ws.feats]),
         lambda ws: (".faiss", "not a readable FAISS index")),
    # ---- manifest.json damaged by hand: one line naming it and the field
    *(Case(f"query_manifest_{label}", "query",
           lambda ws, t=text: after((ws.cat / "manifest.json").write_text(t), ["query", ws.cat, "--features", ws.feats]),
           lambda ws, n=needle: ("manifest.json", n))
      for label, text, needle in (("json_array", "[1, 2]", "JSON object"), ("null", "null", "null"),
                                  ("not_json", "{", "not valid JSON"))),
    *(Case(f"query_manifest_{field}_{label}", "query",
           lambda ws, f=field, v=value: after(ws.manifest(**{f: v}), ["query", ws.cat, "--features", ws.feats]),
           lambda ws, f=field: ("manifest.json", f"'{f}'"))
      for field, label, value in (("generation", "as_string", "3"), ("dim", "as_string", "16"),
                                  ("calibration", "as_string", "high"), ("main", "in_another_catalogue",
                                                                         "../base/seg-000001"))),
    Case("query_manifest_wrong_dim", "query",
         lambda ws: after(ws.manifest(dim=17), ["query", ws.cat, "--features", ws.feats]),
         lambda ws: ("embeddings.npy", "dimension 16", "'dim' says 17")),
    Case("query_manifest_run_without_sha256", "query",
         lambda ws: after(ws.manifest(runs=[{k: v for k, v in r.items() if k != "sha256"}
                                            for r in json.loads((ws.cat / "manifest.json").read_text())["runs"]]),
                          ["query", ws.cat, "--features", ws.feats]),
         lambda ws: ("manifest.json", "runs[0].sha256")),
    Case("query_manifest_index_file_outside", "query",
         lambda ws: after(ws.manifest(ws.hnsw, index={**json.loads((ws.hnsw / "manifest.json").read_text())["index"],
                                                      "file": str(ws.secret)}),
                          ["query", ws.hnsw, "--trackid", "1000"]),
         lambda ws: ("manifest.json", "'index.file'", "--allow-outside-paths")),
    # ---- paths read from files stay in their folder (artistsim.data.paths)
    Case("featurize_manifest_path_climbs_out", "featurize",
         lambda ws: after(ws.tone_file("outside.wav"),
                          ["featurize", ws.featurize_manifest(["a.wav", "../outside.wav"]), ws.root / "out"]),
         lambda ws: ("manifest.tsv: line 3", "'..'", "--allow-outside-paths")),
    Case("featurize_manifest_absolute_path", "featurize",
         lambda ws: ["featurize", ws.featurize_manifest(["a.wav", str(ws.secret)]), ws.root / "out"],
         lambda ws: ("manifest.tsv: line 3", "absolute")),
    Case("featurize_manifest_link_out", "featurize",
         lambda ws: after(_link(ws, "music/b.wav", ws.tone_file("elsewhere/b.wav")),
                          ["featurize", ws.featurize_manifest(["a.wav", "b.wav"]), ws.root / "out"]),
         lambda ws: ("manifest.tsv: line 3", "symbolic link")),
    Case("featurize_folder_walk_meets_a_link_out", "featurize",
         lambda ws: after((ws.tone_file("music/a.wav"), _link(ws, "music/c.wav", ws.tone_file("elsewhere/c.wav"))),
                          ["featurize", ws.root / "music", ws.root / "out"]),
         lambda ws: ("c.wav", "symbolic link", "--allow-outside-paths")),
    Case("pack_meta_header_is_another_files_first_line", "pack", _secret_header,
         lambda ws: ("train_meta.tsv", "missing column(s)", "archive_features_path")),
    # ---- audio named; an empty plan refused
    Case("query_corrupt_audio_names_the_file", "query",
         lambda ws: ["query", ws.cat, "--audio", ws.raw("noise.ogg", bytes(range(256)) * 8)],
         lambda ws: ("noise.ogg", "bad audio")),
    Case("query_ogg_with_a_damaged_middle", "query", lambda ws: ["query", ws.cat, "--audio", _corrupt_middle_ogg(ws)],
         lambda ws: ("corrupt.ogg", "bad audio (corrupt)")),
    Case("featurize_empty_plan", "featurize",
         lambda ws: ["featurize", ws.featurize_manifest([]), ws.root / "out"], lambda ws: ("no tracks",)),
    # ---- options checked before anything is written
    Case("index_build_far_above_one", "index build",
         lambda ws: ["index", "build", ws.root / "new", "--data", ws.data, "--run", ws.run, "--far", "2"],
         lambda ws: ("--far", "between 0 and 1")),
    *(Case(f"index_build_{flag.strip('-')}_{value}", "index build",
           lambda ws, f=flag, v=value: ["index", "build", ws.root / "new", "--data", ws.data, "--run", ws.run, f, v],
           lambda ws, f=flag: (f,))
      for flag, value in (("--hop", "0"), ("--window", "0"), ("--window", "500"))),
    *(Case(f"baseline_{flag.strip('-').replace('-', '_')}_{value}", "baseline",
           lambda ws, f=flag, v=value: ["baseline", ws.data, "--method", "lda", f, v],
           lambda ws, f=flag, m=message: (f, m))
      for flag, value, message in (("--val-fraction", "1.5", "strictly between 0 and 1"),
                                   ("--val-fraction", "0", "strictly between 0 and 1"),
                                   ("--val-min-artists", "-1", ">= 0"))),
    Case("predict_hop_zero", "predict",
         lambda ws: ["predict", ws.data, "--run", ws.run, "--out", ws.root / "sub.tsv", "--hop", "0"],
         lambda ws: ("--hop", ">= 1")),
    *(Case(f"{verb}_k_{k}", verb, lambda ws, v=verb, k=k: [v, ws.cat, "--trackid", "1000", "--k", k],
           lambda ws: ("--k", ">= 1"))
      for verb in ("identify", "query") for k in ("0", "-1")),
    *(Case(f"serve_{flag.strip('-')}_{value}", "serve", lambda ws, f=flag, v=value: ["serve", ws.cat, f, v],
           lambda ws, f=flag: (f,))
      for flag, value in (("--port", "99999"), ("--port", "-1"), ("--threads", "0"))),
]
