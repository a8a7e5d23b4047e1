"""Batch loading: the packed memory-mapped store vs one .npy file per track (the seed's way).

On a synthetic dataset in the competition layout (made once under /tmp, never in the
repository), one epoch of the training batches -- whole artists, 32 per batch, random
crops -- is loaded through the library's own path (`crop_indices` + `take_batch`) from:

- `PackedStore` (one float16 memory map per split, written by `artistsim pack`);
- `NpyFiles` (reads, checks and transposes each track's `.npy`, as the seed re-read
  its files every batch).

Both read the same tracks with the same crops, from a warm page cache (the files were
just written or read; dropping the cache needs root and would disturb other users of a
shared machine). Then three memory figures, each in a fresh process (peak RSS = VmHWM):
packing the train split, one epoch of batch loading at crop 81, and embedding the test
split with a small model. Memory-mapped pages count in RSS as file-backed pages (page
cache the kernel can drop), so the anonymous part is reported too.

    python benchmarks/bench_loading.py --quick   # synth `demo` (3,011 train tracks)
    python benchmarks/bench_loading.py --full    # synth `small` (~30,000 train tracks)

Target (tracker issue): the store loads batches >= 10x faster than per-file loading.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ARTISTS_PER_BATCH = 32
CROPS = (81, 10)
MEMORY_CASES = ("pack", "epoch", "embed")


def open_sources(data_dir: Path):
    from artistsim.data import NpyFiles, features_root, read_meta
    from artistsim.store import PackedStore

    meta = read_meta(data_dir, "train")
    rel = meta["archive_features_path"].tolist()
    packed = PackedStore.open(data_dir, "train", meta)
    files = NpyFiles.index(features_root(data_dir, "train", rel[0]), rel, progress=False)
    return meta, packed, files


def epoch_batches(meta) -> list[np.ndarray]:
    from artistsim.sampling import ArtistBatchSampler

    sampler = ArtistBatchSampler(meta["artistid"].to_numpy(np.int64), ARTISTS_PER_BATCH, seed=0)
    return sampler.batches(0)


def load_epoch(source, batches: list[np.ndarray], crop: int, seed: int = 0) -> int:
    """Load every batch as the trainer does; returns the tracks loaded."""
    from artistsim.data import crop_indices, take_batch

    rng = np.random.default_rng(seed)
    tracks = 0
    for rows in batches:
        idx, true = crop_indices(source.lengths[rows], crop, rng, "wrap")
        x = take_batch(source, rows, idx, true, "wrap")
        tracks += x.shape[0]
    return tracks


def time_epochs(source, batches: list[np.ndarray], crop: int, min_seconds: float) -> dict:
    """Whole epochs until `min_seconds` have passed (at least one); per-batch rates."""
    n_batches = n_tracks = epochs = 0
    with C.timed() as t:
        start = time.perf_counter()
        while epochs == 0 or time.perf_counter() - start < min_seconds:
            n_tracks += load_epoch(source, batches, crop, seed=epochs)
            n_batches += len(batches)
            epochs += 1
    return {"wall": t.wall, "cpu": t.cpu, "batches": n_batches, "tracks": n_tracks, "epochs": epochs,
            "load": (t.load_before, t.load_after)}


# --------------------------------------------------------------------------- memory children


def child(case: str, data_dir: Path) -> dict:
    """One memory case in this fresh process: peak RSS, final anonymous / file RSS, time."""
    start_mb = C.proc_status_mb("VmRSS")
    out: dict = {"case": case, "rss_start_mb": start_mb}
    with C.timed() as t:
        if case == "pack":
            from artistsim.store import pack_split

            summary = pack_split(data_dir, "train", force=True, progress=False)
            out["detail"] = f"{summary['tracks']:,} tracks, {summary['bytes'] / 2**20:,.0f} MB store"
        elif case == "epoch":
            _, packed, _ = open_sources(data_dir)
            batches = epoch_batches(_meta(data_dir))
            tracks = load_epoch(packed, batches, 81)
            out["detail"] = f"{len(batches)} batches, {tracks:,} tracks at crop 81"
        elif case == "embed":
            import torch

            from artistsim.config import TransformerConfig
            from artistsim.data import load_split
            from artistsim.infer import embed_full
            from artistsim.models import build_model

            torch.manual_seed(0)
            model = build_model(TransformerConfig(d_model=128, num_heads=4, num_layers=2, ffn_dim=256,
                                                  projector_hidden=128))
            split = load_split(data_dir, "test", progress=False)
            rows = np.arange(len(split.meta))
            emb = embed_full(model, split.source, rows, torch.device("cpu"), batch_size=256, progress=False)
            out["detail"] = f"{len(rows):,} test tracks -> {emb.shape} (transformer d 128, 2 layers)"
    out.update(wall=t.wall, cpu=t.cpu, peak_mb=C.proc_status_mb("VmHWM"),
               anon_mb=C.proc_status_mb("RssAnon"), file_mb=C.proc_status_mb("RssFile"))
    return out


def _meta(data_dir: Path):
    from artistsim.data import read_meta

    return read_meta(data_dir, "train")


# --------------------------------------------------------------------------- tables


def throughput_section(data_dir: Path, min_seconds: float) -> tuple[C.Section, dict]:
    meta, packed, files = open_sources(data_dir)
    batches = epoch_batches(meta)
    load0 = C.load_average()
    rows, ratios, raw = [], {}, {}
    for crop in CROPS:
        # Touch every file once so both sources start from a warm page cache.
        load_epoch(files, batches, crop)
        load_epoch(packed, batches, crop)
        res = {name: time_epochs(src, batches, crop, min_seconds) for name, src in (("packed", packed), ("npy", files))}
        raw[crop] = res
        rate = {name: r["batches"] / r["wall"] for name, r in res.items()}
        cpu_rate = {name: r["batches"] / r["cpu"] for name, r in res.items()}
        ratios[crop] = rate["packed"] / rate["npy"]
        for name, label in (("packed", "`PackedStore` (float16 memmap)"), ("npy", "`NpyFiles` (one .npy per track)")):
            r = res[name]
            rows.append([crop, label, r["batches"], C.fmt(r["wall"]), C.fmt(r["cpu"]), C.fmt(rate[name], 1),
                         C.fmt(r["tracks"] / r["wall"], 0), C.fmt(cpu_rate[name], 1),
                         C.fmt(ratios[crop], 1) if name == "packed" else "1.0"])
    tbl = C.markdown_table(
        ["crop", "source", "batches", "wall s", "CPU s", "batches/s", "tracks/s", "batches / CPU-s", "speed-up"],
        rows, "rlrrrrrrr")
    mean_batch = np.mean([len(b) for b in batches])
    met = all(r >= 10 for r in ratios.values())
    notes = (f"{len(batches)} batches per epoch of {ARTISTS_PER_BATCH} whole artists (mean {mean_batch:.0f} "
             f"tracks); {len(meta):,} train tracks in `{data_dir}`. Warm page cache for both sources.")
    if not met:
        worst = min(ratios, key=ratios.get)
        notes += f" At crop {worst} the store is {ratios[worst]:.1f}x faster (target 10x)."
    section = C.Section(heading="Batches per second, packed store vs per-file .npy", table=tbl,
                        target="packed >= 10x the batches/s of per-file loading", met=met, notes=notes,
                        load=(load0, C.load_average()))
    return section, {"ratios": ratios}


def memory_section(data_dir: Path, args: argparse.Namespace) -> tuple[C.Section, list[dict]]:
    results = []
    for case in MEMORY_CASES:
        C.log(f"loading memory case: {case} (fresh process)")
        r = C.run_child(C.child_command("bench_loading.py", "--child", case, "--data", str(data_dir)),
                        memory_limit_gb=args.memory_limit_gb)
        r.setdefault("case", case)
        results.append(r)
    rows = []
    labels = {"pack": "pack the train split (`pack_split`)", "epoch": "one epoch of batches at crop 81 (store)",
              "embed": "embed the test split (`embed_full`, small transformer)"}
    for r in results:
        if "error" in r:
            rows.append([labels[r["case"]], "FAILED", r["error"], "", "", "", "", ""])
            continue
        rows.append([labels[r["case"]], C.fmt(r["wall"]), C.fmt(r["cpu"]), f"{r['peak_mb']:,.0f}",
                     f"{r['peak_mb'] - r['rss_start_mb']:,.0f}", f"{r['anon_mb']:,.0f}", f"{r['file_mb']:,.0f}",
                     r["detail"]])
    frames, _ = __import__("artistsim.store", fromlist=["store_paths"]).store_paths(data_dir, "train")
    tbl = C.markdown_table(["job (fresh process)", "wall s", "CPU s", "peak RSS MB", "peak above start MB",
                            "anon RSS at end MB", "file RSS at end MB", "what"], rows, "lrrrrrrl")
    notes = (f"Train store: {frames.stat().st_size / 2**20:,.0f} MB. 'start' is the interpreter with its imports. "
             "File-backed RSS is the memory map's pages in the page cache (shared, reclaimable); packing streams one "
             "track at a time, so its anonymous memory stays flat whatever the split's size. The 41,377-track "
             "full-size figures are the lead's to add.")
    return C.Section(heading="Peak memory of packing, loading an epoch and embedding", table=tbl, notes=notes,
                     target="", met=None), results


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__)
    parser.add_argument("--preset", help="synth preset (default: demo, or small with --full)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="minimum timed seconds per source")
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--child", choices=MEMORY_CASES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    C.set_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.data)))
        return 0
    preset = args.preset or ("small" if args.full else "demo")
    facts = C.machine_facts()
    data_dir = C.synth_dataset(preset)
    facts["dataset"] = f"synth {preset} at {data_dir}"
    throughput, extra = throughput_section(data_dir, args.min_seconds)
    memory, mem_results = memory_section(data_dir, args)
    result = C.make_result("loading", "Data loading", C.mode_of(args), "bench_loading.py", argv,
                           [throughput, memory], facts, {**extra, "memory": mem_results})
    C.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
