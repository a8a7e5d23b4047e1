"""Batch loading: the packed memory-mapped store vs one .npy file per track (the seed's way).

On a synthetic dataset in the competition layout (made once under /tmp, never in the
repository), one epoch of the training batches -- whole artists, 32 per batch, random
crops -- is loaded through the library's own path (`crop_indices` + `take_batch`) from:

- `PackedStore` (one float16 memory map per split, written by `artistsim pack`);
- `NpyFiles` (reads, checks and transposes each track's `.npy`, as the seed re-read
  its files every batch).

Both read the same tracks with the same crops, from a warm page cache (the files were
just written or read; dropping the cache needs root and would disturb other users of a
shared machine). Then three memory figures, each in a fresh process: packing the train
split, one epoch of batch loading at crop 81, and embedding the test split (a small
transformer in quick mode, the seed transformer in full mode). With --full they run on
synth `full` (168,030 train and 42,129 test tracks, as the competition's sizes; made once,
32.5 GB, or point --memory-data at an existing copy). Memory-mapped pages count in RSS
as file-backed pages (page cache the kernel can drop), so the anonymous peak is sampled
and reported too.

    python -m benchmarks.bench_loading --quick   # synth `demo` (3,011 train tracks)
    python -m benchmarks.bench_loading --full    # synth `small` (~30,000 train tracks) + `full`

Targets (tracker issue): the store loads batches >= 10x faster than per-file loading;
each memory job stays under 6 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import common as C

ARTISTS_PER_BATCH = 32
CROPS = (81, 10)
MEMORY_CASES = ("pack", "epoch", "embed")



class PeakRss:
    """Peak anonymous and file-backed RSS, sampled by a thread every `interval` seconds.

    The kernel keeps only the peak of the total (VmHWM). A job reading a memory-mapped
    store has two kinds of resident pages: anonymous ones (its own arrays, which must fit
    in RAM) and file-backed ones (the map's pages in the page cache, shared and dropped
    by the kernel under pressure). The sampled peaks tell them apart.
    """

    def __init__(self, interval: float = 0.05) -> None:
        import threading

        self.interval = interval
        self.anon_mb = self.file_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.anon_mb = max(self.anon_mb, C.proc_status_mb("RssAnon"))
        self.file_mb = max(self.file_mb, C.proc_status_mb("RssFile"))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRss:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _embed_models() -> dict:
    from artistsim.config import TransformerConfig

    return {"small": TransformerConfig(d_model=128, num_heads=4, num_layers=2, ffn_dim=256, projector_hidden=128),
            "seed": TransformerConfig()}


def open_sources(data_dir: Path):
    from artistsim.data.layout import NpyFiles, features_root, read_meta
    from artistsim.data.store import PackedStore

    meta = read_meta(data_dir, "train")
    rel = meta["archive_features_path"].tolist()
    packed = PackedStore.open(data_dir, "train", meta)
    files = NpyFiles.index(features_root(data_dir, "train", rel[0]), rel, progress=False)
    return meta, packed, files


def epoch_batches(meta) -> list[np.ndarray]:
    from artistsim.training.sampling import ArtistBatchSampler

    sampler = ArtistBatchSampler(meta["artistid"].to_numpy(np.int64), ARTISTS_PER_BATCH, seed=0)
    return sampler.batches(0)


def load_epoch(source, batches: list[np.ndarray], crop: int, seed: int = 0) -> int:
    """Load every batch as the trainer does; returns the tracks loaded."""
    from artistsim.data.splits import crop_indices, take_batch

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


def child(case: str, data_dir: Path, model: str = "small") -> dict:
    """One memory case in this fresh process: peak RSS, final anonymous / file RSS, time."""
    start_mb = C.proc_status_mb("VmRSS")
    out: dict = {"case": case, "rss_start_mb": start_mb}
    with C.timed() as t, PeakRss() as peaks:
        if case == "pack":
            from artistsim.data.store import pack_split

            summary = pack_split(data_dir, "train", force=True, progress=False)
            out["detail"] = f"{summary['tracks']:,} tracks, {summary['bytes'] / 2**20:,.0f} MB store"
        elif case == "epoch":
            _, packed, _ = open_sources(data_dir)
            batches = epoch_batches(_meta(data_dir))
            tracks = load_epoch(packed, batches, 81)
            out["detail"] = f"{len(batches)} batches, {tracks:,} tracks at crop 81"
        elif case == "embed":
            import torch

            from artistsim.data.splits import load_split
            from artistsim.embed import embed_full
            from artistsim.models import build_model

            torch.manual_seed(0)
            cfg = _embed_models()[model]
            net = build_model(cfg).eval()
            split = load_split(data_dir, "test", progress=False)
            rows = np.arange(len(split.meta))
            emb = embed_full(net, split.source, rows, torch.device("cpu"), batch_size=256, progress=False)
            out["detail"] = (f"{len(rows):,} test tracks -> {emb.shape} (transformer d {cfg.d_model}, "
                             f"{cfg.num_layers} layers)")
    out.update(wall=t.wall, cpu=t.cpu, peak_mb=C.proc_status_mb("VmHWM"), peak_anon_mb=peaks.anon_mb,
               peak_file_mb=peaks.file_mb,
               anon_mb=C.proc_status_mb("RssAnon"), file_mb=C.proc_status_mb("RssFile"))
    return out


def _meta(data_dir: Path):
    from artistsim.data.layout import read_meta

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


def memory_section(data_dir: Path, model: str, args: argparse.Namespace) -> tuple[C.Section, list[dict]]:
    results = []
    for case in MEMORY_CASES:
        C.log(f"loading memory case: {case} on {data_dir} (fresh process)")
        r = C.run_child(C.child_command("bench_loading.py", "--child", case, "--data", str(data_dir),
                                        "--embed-model", model, "--threads", str(args.threads)),
                        memory_limit_gb=args.memory_limit_gb, timeout=4 * 3600.0)
        r.setdefault("case", case)
        results.append(r)
    rows = []
    labels = {"pack": "pack the train split (`pack_split`)", "epoch": "one epoch of batches at crop 81 (store)",
              "embed": f"embed the test split (`embed_full`, {model} transformer)"}
    for r in results:
        if "error" in r:
            rows.append([labels[r["case"]], "FAILED", r["error"], "", "", "", "", ""])
            continue
        rows.append([labels[r["case"]], C.fmt(r["wall"]), C.fmt(r["cpu"]), f"{r['peak_mb']:,.0f}",
                     f"{r['peak_anon_mb']:,.0f}", f"{r['peak_file_mb']:,.0f}", f"{r['rss_start_mb']:,.0f}",
                     r["detail"]])
    frames, _ = __import__("artistsim.data.store", fromlist=["store_paths"]).store_paths(data_dir, "train")
    tbl = C.markdown_table(["job (fresh process)", "wall s", "CPU s", "peak RSS MB", "peak anonymous MB",
                            "peak file-backed MB", "RSS at start MB", "what"], rows, "lrrrrrrl")
    done = [r for r in results if "error" not in r]
    met = len(done) == len(results) and all(r["peak_anon_mb"] < 6 * 1024 for r in done)
    notes = (f"Data: `{data_dir}`, train store {frames.stat().st_size / 2**20:,.0f} MB. Peak RSS is the kernel's "
             "VmHWM; the anonymous and file-backed peaks are sampled every 50 ms. File-backed pages are the "
             "memory map's pages in the page cache: shared, and dropped by the kernel under memory pressure, so "
             "a pass over a store larger than the free RAM still runs; the anonymous peak is the memory the job "
             "itself needs. Packing streams one track at a time, so its anonymous memory stays flat whatever "
             "the split's size. 'RSS at start' is the interpreter with its imports.")
    over = [labels[r["case"]] for r in done if r["peak_mb"] >= 6 * 1024]
    if over:
        notes += (" Total peak RSS (anonymous + page cache) is above 6 GB for: " + "; ".join(over) +
                  ": those are the store's cached pages, not memory the job holds.")
    return C.Section(heading="Peak memory of packing, loading an epoch and embedding", table=tbl, notes=notes,
                     target="each job's anonymous (own) memory < 6 GB", met=met), results


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__)
    parser.add_argument("--preset", help="synth preset (default: demo, or small with --full)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="minimum timed seconds per source")
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--child", choices=MEMORY_CASES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--memory-data", type=Path,
                        help="dataset for the memory jobs (default: the throughput dataset quick; "
                             "synth `full` with --full)")
    parser.add_argument("--embed-model", choices=("small", "seed"),
                        help="model of the embedding job (default: small quick, seed with --full)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    C.set_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.data, args.embed_model or "small")))
        return 0
    preset = args.preset or ("small" if args.full else "demo")
    facts = C.machine_facts()
    data_dir = C.synth_dataset(preset)
    facts["dataset"] = f"synth {preset} at {data_dir}"
    throughput, extra = throughput_section(data_dir, args.min_seconds)
    memory_dir = args.memory_data or (C.synth_dataset("full") if args.full else data_dir)
    facts["dataset"] += f"; memory jobs on {memory_dir}"
    memory, mem_results = memory_section(memory_dir, args.embed_model or ("seed" if args.full else "small"), args)
    result = C.make_result("loading", "Data loading", C.mode_of(args), "bench_loading.py", argv,
                           [throughput, memory], facts, {**extra, "memory": mem_results})
    C.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
