"""Featurize: speed against the decode-only bound and a librosa pipeline; quality on real music.

Speed. Tracks of 3-7 minutes (real music from the real set of benchmarks/real_music.py,
re-encoded as 44.1 kHz stereo wav, flac, ogg and mp3; synthetic music when the set is not
built) are featurized three ways, each in a fresh process with the same worker count:

- `artistsim`: `artistsim featurize` as users run it (plan, hash, decode the centred 60 s,
  resample, describe, write .npy and journal);
- `decode-only`: the bound: the same worker pool doing only `decode_fragment` (open, seek,
  decode and resample the 60 s fragment) and nothing else;
- `librosa`: a per-file pipeline a researcher would write: `librosa.load` of the whole
  file at 16 kHz, the centred 60 s, then per 1.5 s window librosa's STFT, mel, MFCC,
  chroma, spectral features and onset autocorrelation (the same 512-number layout; values
  differ in detail, e.g. librosa's chroma filters). Needs the `bench` extra.

Reported: tracks/s, real-time factor (seconds of audio in the input per second of wall
time), the ratios, and peak memory (the parent's peak RSS plus each worker's peak, summed:
an upper bound of what the job held at once). Targets (issue 11): artistsim within 1.3x
of decode-only, >= 3x librosa, peak < 1 GB.

Quality (when the real set is featurized): nDCG@100 on its artist-disjoint test split of
a random ranking, the mean-pool and LDA baselines, and the demo training recipe
(configs/transformer_demo.toml) trained on its train split.

Front ends (`featurize --frontend`) are compared by `python -m benchmarks.bench_frontends`
(quality per front end on the real set, speed against the TensorFlow musicnn).

    python benchmarks/real_music.py                   # once: build the real set
    python benchmarks/bench_featurize.py --quick      # 3 tracks per format
    python benchmarks/bench_featurize.py --full       # 12 tracks per format
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from benchmarks import common as C

REAL = Path(os.environ.get("ARTISTSIM_REAL_MUSIC", "/work/data/real_music"))
FORMATS = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}


# --------------------------------------------------------------------------- inputs


def source_tracks(n: int) -> Iterator[tuple[np.ndarray, int]]:
    """n pieces of 3-7 min music, one at a time: real tracks when the real set exists, else synthetic."""
    import soundfile as sf

    made = 0
    manifest = REAL / "manifest.tsv"
    if manifest.exists():
        paths = [REAL / line.split("\t")[0] for line in manifest.read_text().splitlines()[1:]]
        for p in paths:
            if made < n and 180 <= sf.info(str(p)).duration <= 420:
                x, rate = sf.read(str(p), dtype="float32", always_2d=True)
                made += 1
                yield (x if x.shape[1] == 2 else np.repeat(x[:, :1], 2, 1)), rate
    rng = np.random.default_rng(0)
    for _ in range(n - made):
        rate, sec = 44_100, rng.uniform(180, 420)
        t = np.arange(int(sec * rate)) / rate
        x = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) + 0.05 * rng.standard_normal(len(t))
        yield np.stack([x, x], 1).astype(np.float32), rate


def make_inputs(n: int) -> tuple[dict[str, Path], float]:
    """One folder per format with the same n tracks at 44.1 kHz stereo; total audio seconds."""
    import soundfile as sf
    import soxr

    root = C.SCRATCH / f"featurize_{n}"
    folders = {fmt: root / fmt for fmt in FORMATS}
    marker = root / "done.json"
    if not marker.exists():
        print(f"[bench] writing {n} tracks x {len(FORMATS)} formats to {root} (once) ...", file=sys.stderr)
        seconds = 0.0
        for i, (x, rate) in enumerate(source_tracks(n)):
            if rate != 44_100:
                x = soxr.resample(x, rate, 44_100).astype(np.float32)
            seconds += len(x) / 44_100
            for fmt, subtype in FORMATS.items():
                folders[fmt].mkdir(parents=True, exist_ok=True)
                try:  # in blocks: one huge write crashes libsndfile's Vorbis encoder
                    with sf.SoundFile(folders[fmt] / f"track{i:03d}.{fmt}", "w", 44_100, 2, subtype) as fh:
                        for start in range(0, len(x), 1 << 16):
                            fh.write(x[start : start + (1 << 16)])
                except (sf.LibsndfileError, ValueError, TypeError) as exc:
                    print(f"[bench] cannot write {fmt}: {exc}", file=sys.stderr)
        marker.write_text(json.dumps({"seconds": seconds}))
    seconds = json.loads(marker.read_text())["seconds"]
    return {f: d for f, d in folders.items() if any(d.glob(f"*.{f}"))}, seconds


# --------------------------------------------------------------------------- children


def _decode_only(path: str) -> int:
    from artistsim.audio.decode import decode_fragment

    return len(decode_fragment(path).samples)


def _librosa_track(path: str) -> np.ndarray:
    """The same 512-number layout computed per file and per window with librosa."""
    import librosa
    import scipy.fft

    y, sr = librosa.load(path, sr=16_000, mono=True)
    n = min(len(y), 960_000)
    y = y[(len(y) - n) // 2 : (len(y) - n) // 2 + n]
    t = min(81, 1 + (len(y) - 24_000) // 11_700)
    cols = []
    for w in range(t):  # the per-window loop such pipelines have
        seg = y[w * 11_700 : w * 11_700 + 24_000]
        S = np.abs(librosa.stft(seg, n_fft=1024, hop_length=300, center=False)) ** 2 / 256.0**2
        mel = librosa.feature.melspectrogram(S=S, sr=sr, n_mels=64, fmin=30, fmax=8000, htk=True, norm=None)
        logmel = np.log10(mel + 1e-10)
        mfcc = scipy.fft.dct(logmel, axis=0, norm="ortho")[:32]
        chroma = librosa.feature.chroma_stft(S=S, sr=sr, n_fft=1024, norm=1)
        shape = np.vstack([np.log10(S.sum(0) + 1e-10),
                           librosa.feature.spectral_centroid(S=S, sr=sr) / 8000,
                           librosa.feature.spectral_bandwidth(S=S, sr=sr) / 8000,
                           librosa.feature.spectral_rolloff(S=S, sr=sr, roll_percent=0.85) / 8000,
                           librosa.feature.spectral_flatness(S=S, power=1.0),
                           np.r_[0, np.maximum(np.diff(logmel, axis=1), 0).mean(0)][None],
                           S[257:].sum(0, keepdims=True) / (S.sum(0) + 1e-10),
                           S[:16].sum(0, keepdims=True) / (S.sum(0) + 1e-10)])
        onset = librosa.onset.onset_strength(S=logmel * 10, sr=sr, hop_length=300)
        ac = librosa.autocorrelate(onset - onset.mean(), max_size=41)
        groups = logmel.reshape(8, 8, -1)
        coarse = logmel.reshape(16, 4, -1).mean(1)
        mod = np.abs(np.fft.rfft((coarse - coarse.mean(1, keepdims=True)) * np.hanning(coarse.shape[1]), axis=1))
        cols.append(np.concatenate([
            logmel.mean(1), logmel.std(1), np.abs(np.diff(logmel, axis=1)).mean(1), mfcc.mean(1), mfcc.std(1),
            chroma.mean(1), chroma.std(1), shape.mean(1), shape.std(1),
            (groups.max(1) - groups.min(1)).mean(1), groups.min(1).mean(1),
            ac[1:41] / (ac[0] + 1e-3), np.log10(mod[:, 1:11].ravel() / 19.0 + 1e-2)]))
    return np.stack(cols, 1).astype(np.float32)


def child(method: str, folder: Path, workers: int) -> dict:
    """Run one method over a folder in this fresh process; wall time and peak memory."""
    import multiprocessing as mp

    from artistsim.audio.featurize import FeaturizeOptions, featurize_dataset

    paths = sorted(str(p) for p in folder.iterdir() if p.is_file())
    start = time.perf_counter()  # after the imports: each method's own work, pool start-up included
    if method == "artistsim":
        out = C.SCRATCH / f"featurize_out_{folder.parent.name}_{folder.name}_{os.getpid()}"
        summary = featurize_dataset(folder, out, FeaturizeOptions(workers=workers, progress=False))
        assert summary.skipped == 0, summary.render()
        import shutil

        shutil.rmtree(out)
    else:
        fn = _decode_only if method == "decode-only" else _librosa_track
        with mp.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
            list(pool.imap_unordered(fn, paths, chunksize=1))
    wall = time.perf_counter() - start
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"wall": wall, "tracks": len(paths), "peak_main_mb": C.peak_rss_mb(), "peak_worker_mb": kids}


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------- quality


def quality() -> C.Section:
    """Random / mean-pool / LDA / demo recipe on the featurized real set's test split."""
    data = REAL / "features"
    if not (data / "test_gt.tsv").exists():
        return C.Section("Retrieval quality on real music", "not measured: build the real set first "
                         "(python benchmarks/real_music.py, then artistsim featurize ... see README)")
    from artistsim.data.splits import load_split
    from artistsim.evaluation.metrics import ndcg_at_k

    test = load_split(data, "test", progress=False)
    rng = np.random.default_rng(0)
    n = len(test.meta)
    def shuffled() -> np.ndarray:  # each query's other tracks in random order
        return np.stack([(lambda p: p[p != i])(rng.permutation(n))[:100] for i in range(n)])

    rand = np.mean([ndcg_at_k(shuffled(), test.artists) for _ in range(20)])
    rows = [["random ranking", C.fmt(rand, 4), "-"]]
    cli = [sys.executable, "-m", "artistsim", "-q"]
    env = {**os.environ, "PYTHONPATH": str(C.SRC), "OMP_NUM_THREADS": "1"}
    subprocess.run([*cli, "pack", str(data)], check=True, env=env, capture_output=True)
    for method in ("meanpool", "lda"):
        out = subprocess.run([*cli, "baseline", str(data), "--method", method], env=env, check=True,
                             capture_output=True, text=True).stdout
        rows.append([f"baseline {method}", re.search(r"test nDCG@100 ([0-9.]+)", out).group(1),
                     re.search(r"validation nDCG@100 ([0-9.]+)", out).group(1)])
    run = C.SCRATCH / "real_music_demo_run"
    import shutil

    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([*cli, "train", str(data), "--config", str(C.SRC / "artistsim/configs/transformer_demo.toml"),
                    "--out", str(run)], env=env, check=True, capture_output=True)
    train_s = time.perf_counter() - t0
    table = subprocess.run([*cli, "evaluate", str(data), "--run", str(run)], env=env, check=True,
                           capture_output=True, text=True).stdout
    cells = next(line for line in table.splitlines() if line.startswith(f"| {run.name} ")).split("|")
    rows.append([f"demo recipe (transformer_demo.toml, trained {train_s:.0f} s)", cells[4].strip(), cells[2].strip()])
    summary = json.loads((REAL / "manifest_summary.json").read_text())
    tracks = C.markdown_table(["ranking", "test nDCG@100", "validation nDCG@100"], rows, "lrr")
    notes = (f"Real set: {summary['tracks']} tracks of {summary['artists']} artists ({summary['hours']} h), game "
             f"soundtracks from the Debian packages {', '.join(summary['packages'])}; artists from the packages' "
             f"own credits (benchmarks/real_music.py). Test split: {n} tracks of "
             f"{len(np.unique(test.artists))} artists never seen in training (featurize --test-fraction 0.3). "
             "Validation holds out 10% of the train artists (2 artists): too few to mean much. "
             "A set this small gives noisy figures (one more hit moves nDCG by ~0.01).")
    return C.Section("Retrieval quality on real music", tracks, notes=notes)


ABLATION = {  # cumulative groups of the descriptor (artistsim.audio.descriptor.GROUPS)
    "log-mel mean + std (128)": ("logmel_mean", "logmel_std"),
    "+ log-mel change, MFCC (256)": ("logmel_delta", "mfcc_mean", "mfcc_std"),
    "+ chroma, shape, contrast (312)": ("chroma_mean", "chroma_std", "shape_mean", "shape_std", "contrast",
                                        "valley"),
    "+ rhythm, modulation: all 512": ("onset_autocorr", "modulation"),
}


def ablation() -> C.Section | None:
    """Which parts of the descriptor earn their place: every track of the set as a query.

    More queries than the test split alone: mean-pool needs no labels, so all tracks are
    queries; LDA is fitted on 3 of 4 artist folds and scores the 4th, in turn.
    """
    data = REAL / "features"
    if not (data / "test_gt.tsv").exists():
        return None
    from artistsim.audio.descriptor import GROUPS
    from artistsim.data.splits import load_split
    from artistsim.evaluation.baselines import baseline_embeddings, pooled_stats
    from artistsim.evaluation.metrics import ndcg_at_k
    from artistsim.evaluation.report import rank

    splits = [load_split(data, s, progress=False) for s in ("train", "test")]
    stats = [np.concatenate(x) for x in zip(*(pooled_stats(s.source, np.arange(len(s.meta))) for s in splits))]
    labels = np.concatenate([s.artists for s in splits])
    artists = np.unique(labels)
    fold = np.random.default_rng(0).permutation(len(artists))[np.searchsorted(artists, labels)] % 4
    rows, dims = [], np.zeros(0, dtype=np.int64)
    for name, groups in ABLATION.items():
        dims = np.concatenate([dims, *(np.arange(512)[GROUPS[g]] for g in groups)])
        mean, std = (x[:, dims] for x in stats)
        z = [(x - x.mean(0)) / (x.std(0) + 1e-6) for x in (mean, std)]
        cells = [name]
        for st in ((mean, std), tuple(z)):
            cells.append(C.fmt(ndcg_at_k(rank(baseline_embeddings("meanpool", None, None, st), False), labels), 4))
        scores = []
        for k in range(4):
            fit, ev = fold != k, fold == k
            emb = baseline_embeddings("lda", tuple(x[fit] for x in z), labels[fit], tuple(x[ev] for x in z))
            scores.append(ndcg_at_k(rank(emb, False), labels[ev]) * ev.sum())
        cells.append(C.fmt(sum(scores) / len(labels), 4))
        rows.append(cells)
    table = C.markdown_table(["descriptor rows", "mean-pool", "mean-pool, standardised", "LDA (4 artist folds)"],
                             rows, "lrrr")
    return C.Section("Descriptor ablation on real music (all tracks as queries)", table,
                     notes=f"{len(labels)} tracks of {len(artists)} artists. Standardised: each pooled "
                           "statistic divided by its spread over the set (label-free) before the cosine. The "
                           "LDA column ranks each fold's tracks among that fold only (about a quarter of the "
                           "candidates), so compare it down its column, not across.")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--tracks", type=int, default=0, help="tracks per format (default 2 quick, 8 full)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="runs of decode-only and artistsim (best kept)")
    p.add_argument("--child", nargs=3, metavar=("METHOD", "FOLDER", "WORKERS"), help=argparse_hidden())
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args(argv)
    if args.child:  # no torch in this process: the workers import it, as in `artistsim featurize`
        print(json.dumps(child(args.child[0], Path(args.child[1]), int(args.child[2]))))
        return 0
    facts = C.machine_facts()
    if args.skip_speed:  # refresh the quality tables only; the speed table of the last run is kept
        sections = [quality(), *filter(None, [ablation()])]
        result = C.make_result("featurize", "Featurize: audio files to features", C.mode_of(args),
                               "bench_featurize.py", argv if argv is not None else sys.argv[1:], sections, facts)
        C.emit(result, args.json, merge=True)
        return 0
    n = args.tracks or (12 if args.full else 3)
    folders, seconds = make_inputs(n)
    try:
        import librosa  # noqa: F401

        methods = ("decode-only", "artistsim", "librosa")
    except ImportError:
        methods = ("decode-only", "artistsim")
    rows, met, load0 = [], [], C.load_average()
    for fmt, folder in folders.items():
        res: dict[str, dict] = {}
        for rep in range(args.repeats):  # alternate the methods, keep each one's best: the load drifts
            for m in methods if rep == 0 else ("decode-only", "artistsim"):
                r = C.run_child(C.child_command("bench_featurize.py", "--child", m, str(folder), str(args.workers)))
                if m not in res or "error" in r or r["wall"] < res[m].get("wall", float("inf")):
                    res[m] = r
        for m, r in res.items():
            if "error" in r:
                print(f"[bench] {fmt} {m}: {r['error']}", file=sys.stderr)
        if any("error" in r for r in res.values()):
            continue
        base, ours = res["decode-only"]["wall"], res["artistsim"]["wall"]
        lib = res.get("librosa", {}).get("wall")
        peak = res["artistsim"]["peak_main_mb"] + args.workers * res["artistsim"]["peak_worker_mb"]
        met += [ours / base <= 1.3, lib is None or lib / ours >= 3, peak < 1024]
        rows.append([fmt, C.fmt(n / ours), C.fmt(seconds / ours, 0), C.fmt(n / base), C.fmt(ours / base),
                     "-" if lib is None else C.fmt(n / lib), "-" if lib is None else C.fmt(lib / ours),
                     C.fmt(peak, 0)])
    table = C.markdown_table(["format", "artistsim tracks/s", "real-time factor", "decode-only tracks/s",
                              "artistsim / decode-only time", "librosa tracks/s", "speed-up over librosa",
                              "artistsim peak MB (all processes)"], rows)
    speed = C.Section(
        f"Featurize speed, {n} tracks of 3-7 min per format, {args.workers} worker processes", table,
        target="within 1.3x of decode-only, >= 3x librosa, peak < 1 GB", met=(all(met) if met else None),
        load=(load0, C.load_average()),
        notes=f"{n} tracks, {seconds / 60:.1f} min of 44.1 kHz stereo audio per format "
              f"({'real music from the real set' if (REAL / 'manifest.tsv').exists() else 'synthetic'}). "
              "Real-time factor: input audio seconds per wall second. Peak: the parent's peak RSS plus "
              f"{args.workers} x the largest worker's. Decode-only and artistsim ran {args.repeats} times each, "
              "alternating, best kept (librosa once); every run pays its own worker start-up (spawn, import "
              "torch), the same for the three.")
    sections = [speed] if args.skip_quality else [speed, quality(), *filter(None, [ablation()])]
    result = C.make_result("featurize", "Featurize: audio files to features", C.mode_of(args),
                           "bench_featurize.py", argv if argv is not None else sys.argv[1:], sections, facts)
    C.emit(result, args.json, merge=True)
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
