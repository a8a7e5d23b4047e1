"""Front ends compared on real music: untrained retrieval quality per front end, and speed.

Why its own script: the quality figures decide `featurize`'s default front end
(docs/featurize.md); they need every track of the real set (benchmarks/real_music.py)
through every front end, which on a shared 2-core machine takes most of an hour for the
musicnn network, so the pooled statistics are computed once per front end into a cache
outside the repository (resumable, one process per front end) and scored in seconds.

    python -m benchmarks.bench_frontends pool dsp                    # one per front end,
    python -m benchmarks.bench_frontends pool musicnn-msd --stride 8 # may run in parallel
    python -m benchmarks.bench_frontends quality                     # the table
    python -m benchmarks.bench_frontends speed --tracks 3 [--tf /tmp/tfref/venv/bin/python]
    python -m benchmarks.bench_frontends trained dsp musicnn-msd     # needs REAL/features_NAME

Each table (quality, speed, trained) goes to benchmarks/results/frontends.json (the others
kept), rendered by `python -m benchmarks.report` into docs/benchmarks.md and the quoted
blocks of docs/featurize.md.

Quality: every track's frames are pooled (mean and standard deviation over windows); 3
artist-disjoint splits (30% of the artists to test, seeds 0-2) score the test tracks
among themselves (nDCG@100, mean over the splits): mean-pool cosine (the project's
`meanpool` baseline: centred means), the same after standardising each pooled number over
the set, and LDA (`lda` baseline: fitted on the train artists' standardised mean + std).
`--stride S` keeps every S-th window of the competition framing (81 windows every 0.73 s):
with S = 4 the 3 s musicnn windows no longer overlap; pooled over a track they estimate
the statistics of all 81 (see the notes of docs/featurize.md).

Speed: tracks of 3-7 minutes, one thread, each step timed on the same tracks in turn:
decode-only (the centred 60 s, resampled), + the dsp descriptor, + musicnn (all 81
windows, `embed_track`), and the original TensorFlow graph on the same 81 log-mel
windows (batches of 16; a scratch environment, tests/audio/musicnn_reference.py).

Trained: the featurized real set (`artistsim featurize REAL/manifest.tsv
REAL/features_NAME --frontend NAME`, all 81 windows) regrouped into the same 3
artist-disjoint splits (benchmarks/real_splits.py); per split the recommended transformer
trained through the CLI and `evaluate`d (add-ons chosen on validation), beside the
baselines of the same `evaluate` (`trained_split`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import common as C

REAL = Path(os.environ.get("ARTISTSIM_REAL_MUSIC", "/work/data/real_music"))
CACHE = C.SCRATCH / "frontends"
TF_SCRIPT = C.ROOT / "tests/audio/musicnn_reference.py"
RESULTS = C.BENCH_DIR / "results" / "frontends.json"


def manifest() -> list[tuple[Path, str]]:
    lines = (REAL / "manifest.tsv").read_text().splitlines()[1:]
    return [(REAL / p, a) for p, a in (line.split("\t")[:2] for line in lines)]


def frames(name: str, x: np.ndarray, stride: int) -> np.ndarray:
    """(D, T') frames of front end `name` for a decoded fragment, every `stride`-th window."""
    import torch

    from artistsim.audio import frontends as fe
    from artistsim.audio import musicnn as m
    from artistsim.audio.decode import check_signal

    if name == "dsp":
        return fe.describe(x, name)[:, ::stride]
    t = check_signal(x)
    net = m.load_model(fe.MUSICNN[name], "cpu")
    with torch.inference_mode():
        mel = m.log_mel(x)
        if len(mel) < m.PATCH:
            mel = torch.nn.functional.pad(mel, (0, 0, 0, m.PATCH - len(mel)))
        starts = torch.as_tensor(fe.musicnn_starts(t, len(mel))[::stride])
        return net.embed_track(mel, starts)[fe.MUSICNN_LAYER].T.numpy()


def pool(name: str, stride: int) -> Path:
    """Pooled mean and std of every track through front end `name`, cached (resumes where it stopped)."""
    import torch

    from artistsim.audio.decode import AudioError, decode_fragment

    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{name}_stride{stride}.npz"
    done: dict[str, tuple] = {}
    if out.exists():
        with np.load(out) as z:
            done = {p: (a, m, s) for p, a, m, s in zip(z["paths"], z["artists"], z["mean"], z["std"])}
    rows = manifest()
    start = time.perf_counter()
    for i, (path, artist) in enumerate(rows):
        if str(path) in done:
            continue
        try:
            f = frames(name, decode_fragment(path).samples, stride)
        except AudioError:
            continue
        done[str(path)] = (artist, f.mean(1), f.std(1))
        if len(done) % 10 == 0 or i == len(rows) - 1:
            keys = sorted(done)
            tmp = out.with_suffix(".tmp.npz")  # renamed into place: `quality` may read it meanwhile
            np.savez(tmp, paths=np.array(keys), artists=np.array([done[k][0] for k in keys]),
                     mean=np.stack([done[k][1] for k in keys]), std=np.stack([done[k][2] for k in keys]))
            os.replace(tmp, out)
            print(f"{name}: {len(done)}/{len(rows)} tracks, {time.perf_counter() - start:.0f} s", flush=True)
    return out


def scores(mean: np.ndarray, std: np.ndarray, labels: np.ndarray, seeds: int = 3) -> dict[str, float]:
    """nDCG@100 on the test artists of `seeds` artist-disjoint splits, per method (mean over splits)."""
    from artistsim.evaluation.baselines import baseline_embeddings
    from artistsim.evaluation.metrics import ndcg_at_k
    from artistsim.evaluation.report import rank

    z = [(x - x.mean(0)) / (x.std(0) + 1e-6) for x in (mean, std)]
    artists = np.unique(labels)
    out: dict[str, list[float]] = {"mean-pool": [], "standardised": [], "LDA": []}
    for seed in range(seeds):
        test_artists = np.random.default_rng(seed).permutation(artists)[: int(round(0.3 * len(artists)))]
        test = np.isin(labels, test_artists)
        ev = labels[test]
        out["mean-pool"].append(ndcg_at_k(rank(baseline_embeddings("meanpool", None, None, (mean[test],)), False), ev))
        out["standardised"].append(ndcg_at_k(rank(baseline_embeddings("meanpool", None, None, (z[0][test],)),
                                                  False), ev))
        lda = baseline_embeddings("lda", (z[0][~test], z[1][~test]), labels[~test], (z[0][test], z[1][test]))
        out["LDA"].append(ndcg_at_k(rank(lda, False), ev))
    return {k: float(np.mean(v)) for k, v in out.items()}


def _read(path: Path, tries: int = 5) -> dict[str, np.ndarray]:
    """A cache read whole (retried: a pool started before the atomic rename rewrites it in place)."""
    for attempt in range(tries):
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, __import__("zipfile").BadZipFile):
            if attempt == tries - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def quality() -> C.Section:
    caches = sorted(c for c in CACHE.glob("*_stride*.npz") if not c.name.endswith(".tmp.npz"))
    loaded = {c.stem: _read(c) for c in caches}
    common = set.intersection(*(set(z["paths"]) for z in loaded.values())) if loaded else set()
    rows = []
    for stem, z in loaded.items():
        keep = np.isin(z["paths"], sorted(common))
        labels = np.unique(z["artists"][keep], return_inverse=True)[1]
        s = scores(z["mean"][keep], z["std"][keep], labels)
        rows.append([stem.replace("_stride", ", window stride "), z["mean"].shape[1], *(C.fmt(v, 3) for v in s.values())])
    n_artists = len(np.unique(next(iter(loaded.values()))["artists"])) if loaded else 0
    return C.Section(
        "Front ends on real music, untrained (pooled statistics)",
        C.markdown_table(["front end", "D", "mean-pool cosine", "standardised", "LDA"], rows, "lrrrr"),
        notes=f"{len(common)} tracks common to every front end, {n_artists} artists; 3 artist-disjoint splits "
              "(30% of the artists in test), test nDCG@100, mean over the splits.")


def speed(n: int, tf_python: str | None, repeats: int = 2) -> C.Section:
    """Tracks/s per step on n 3-7 minute tracks of the real set, one thread, the same tracks.

    Every step runs `repeats` times in turn (the load drifts on a shared machine) and each
    keeps its fastest time per track. The network-only rows time the same log-mel windows:
    PyTorch window by window and whole-track (`embed_track`), and TensorFlow window by
    window (its own process; graph building and a warm-up batch excluded, as for PyTorch).
    """
    import soundfile as sf
    import torch

    from artistsim.audio import frontends as fe
    from artistsim.audio import musicnn as m
    from artistsim.audio.decode import check_signal, decode_fragment

    torch.set_num_threads(1)
    paths = [p for p, _ in manifest() if 180 <= sf.info(str(p)).duration <= 420][:n]
    net = m.load_model("MSD_musicnn", "cpu")
    best: dict[str, list[float]] = {}
    windows, load0 = 0, C.load_average()

    def clock(key: str, i: int, fn) -> None:
        t0 = time.perf_counter()
        fn()
        row = best.setdefault(key, [float("inf")] * len(paths))
        row[i] = min(row[i], time.perf_counter() - t0)

    for i, path in enumerate(paths):
        x = decode_fragment(path).samples
        mel = m.log_mel(x)
        starts = fe.musicnn_starts(check_signal(x), len(mel))
        windows += len(starts)
        patches = torch.from_numpy(mel.numpy()[starts[:, None] + np.arange(m.PATCH)])
        np.save(C.SCRATCH / "tf_patches.npy", patches.numpy())
        with torch.inference_mode():
            net(patches[:16])  # warm-up, as the TF side
            for _ in range(repeats):
                clock("decode", i, lambda: decode_fragment(path))
                clock("dsp", i, lambda: fe.describe(x, "dsp"))
                clock("musicnn", i, lambda: fe.describe(x, "musicnn-msd"))
                clock("net_windows", i, lambda: [net(patches[a : a + 16]) for a in range(0, len(patches), 16)])
                clock("net_track", i, lambda: net.embed_track(mel, torch.as_tensor(starts)))
                if tf_python:
                    res = subprocess.run([tf_python, str(TF_SCRIPT), "speed", str(C.SCRATCH / "tf_patches.npy")],
                                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                    sec = json.loads(res.stdout.strip().splitlines()[-1])["seconds"]
                    row = best.setdefault("tf", [float("inf")] * len(paths))
                    row[i] = min(row[i], sec)
    t = {k: sum(v) for k, v in best.items()}
    k = len(paths)

    def vs_tf(key: str) -> str:  # per-window speed against the reference on the same windows
        return C.fmt(t["tf"] / t[key]) if "tf" in t else "-"

    rows = [["decode-only", C.fmt(k / t["decode"]), "-", "-"],
            ["decode + dsp", C.fmt(k / (t["decode"] + t["dsp"])), "-", "-"],
            ["decode + musicnn-msd (featurize's path: log-mel + network)", C.fmt(k / (t["decode"] + t["musicnn"])),
             C.fmt(windows / t["musicnn"]), vs_tf("musicnn")],
            ["musicnn network only, PyTorch, whole track (embed_track)", C.fmt(k / t["net_track"]),
             C.fmt(windows / t["net_track"]), vs_tf("net_track")],
            ["musicnn network only, PyTorch, window by window (batches of 16)", C.fmt(k / t["net_windows"]),
             C.fmt(windows / t["net_windows"]), vs_tf("net_windows")]]
    if "tf" in t:
        rows.append(["musicnn network only, TensorFlow reference, window by window (batches of 16)",
                     C.fmt(k / t["tf"]), C.fmt(windows / t["tf"]), "1.00"])
    return C.Section(
        f"musicnn speed against the TensorFlow original, {k} tracks of 3-7 min, one thread",
        C.markdown_table(["step (one thread)", "tracks/s", "windows/s", "windows/s ÷ TensorFlow's"], rows, "lrrr"),
        target="the PyTorch network (embed_track) at least as fast per window as the TensorFlow reference",
        met=(t["tf"] >= t["net_track"]) if "tf" in t else None, load=(load0, C.load_average()),
        notes=f"{k} tracks of 3-7 min, {windows} windows (all 81 per track), best of {repeats} per step and track, "
              "the steps alternating on each track (the load drifts on a shared machine: read the ratios). "
              "The TensorFlow reference (TF 2.15, musicnn 0.1.0's own graph, "
              "tests/audio/musicnn_reference.py in a scratch environment) runs on the same log-mel windows; "
              "graph building and a warm-up batch are excluded on both sides. The featurize row adds the "
              "log-mel (one per track) to the network.")


RECIPE = C.SRC / "artistsim/configs/recommended/transformer.toml"
TRAINED_COLS = ("mean-pool", "standardised", "LDA", "tuned LDA", "tuned WCCN", "transformer alone",
                "whole pipeline", "whole pipeline − tuned LDA")


def trained_split(name: str, seed: int, config: Path = RECIPE) -> dict:
    """One split of one front end: the untrained rows, and the recipe trained, evaluated, tested.

    The recipe goes through the public CLI (`artistsim train` with the shipped
    recommended/transformer.toml) and `evaluate` (`artistsim.evaluation.report.evaluate`,
    the CLI verb's table, in this process), whose inference add-ons are chosen on the validation artists
    (the config's val_fraction and val_min_artists); 'whole pipeline' is its last add-on row on test.
    Cached per split and per config text (evaluate.json beside the run), so a rerun only adds what
    is missing and an edited recipe is trained afresh.
    """
    import torch

    from artistsim.config import load_train_config
    from artistsim.data.splits import load_split
    from artistsim.evaluation.report import evaluate
    from benchmarks.real_splits import make_split

    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:10]
    root = CACHE / "trained" / f"{config.stem}-{digest}" / name / f"seed{seed}"
    cache = root / "evaluate.json"
    if cache.exists():
        return json.loads(cache.read_text())
    data = make_split(REAL / f"features_{name}", root / "data", seed)
    run = root / "transformer"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(C.SRC)}
    if not (run / "best.pt").exists() or not (root / "train.json").exists():
        import resource
        import shutil

        shutil.rmtree(run, ignore_errors=True)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "artistsim", "-q", "train", str(data), "--model", "transformer",
                        "--config", str(config), "--out", str(run), "--device", "cpu"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        (root / "train.json").write_text(json.dumps({
            "wall": time.perf_counter() - t0,
            "cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime}))
    torch.set_num_threads(1)
    table = evaluate(data, [run], torch.device("cpu"), progress=False)
    rows = table.rows
    tuned = next(k for k in rows if k.startswith("baseline: lda tuned"))
    wccn = next(k for k in rows if k.startswith("baseline: wccn tuned"))
    addons = next(t for title, t in table.sections.items() if title.startswith("Inference add-ons")).rows
    last = addons[list(addons)[-1]]  # the steps are cumulative: the last is the whole pipeline
    settings = {k.split(" (", 1)[0]: k.split(" (", 1)[1].rstrip(")") for k in addons if " (" in k}
    out = {"mean-pool": rows["baseline: meanpool"]["test plain"], "standardised": standardised(data),
           "LDA": rows["baseline: lda"]["test plain"], "tuned LDA": rows[tuned]["test plain"],
           "tuned WCCN": rows[wccn]["test plain"], "transformer alone": rows[run.name]["test plain"],
           "whole pipeline": last["test"],
           "validation": {"transformer alone": rows[run.name]["validation plain"],
                          "whole pipeline": last["validation"]},
           "settings": settings, "tuned LDA setting": tuned, **json.loads((root / "train.json").read_text()),
           "epochs": len((run / "metrics.jsonl").read_text().splitlines()),
           "validation artists": _validation_artists(load_split(data, "train", progress=False).artists,
                                                     load_train_config(config)),
           "tracks": {s: len(pd_rows(data, s)) for s in ("train", "test")}}
    out["whole pipeline − tuned LDA"] = out["whole pipeline"] - out["tuned LDA"]
    cache.write_text(json.dumps(out, indent=1))
    return out


def _validation_artists(artists: np.ndarray, cfg) -> int:
    """How many training artists `train` and `evaluate` held out for validation under `cfg`."""
    from artistsim.data.splits import run_holdout

    return int(len(np.unique(artists[run_holdout(artists, cfg)])))


def pd_rows(data: Path, split: str) -> list[str]:
    return (data / f"{split}_meta.tsv").read_text().splitlines()[1:]


def standardised(data: Path) -> float:
    """Mean-pool cosine after standardising each pooled mean over the test tracks (label-free)."""
    from artistsim.data.splits import load_split
    from artistsim.evaluation.baselines import baseline_embeddings, pooled_stats
    from artistsim.evaluation.metrics import ndcg_at_k
    from artistsim.evaluation.report import rank

    test = load_split(data, "test", progress=False)
    mean = pooled_stats(test.source, np.arange(len(test.meta)))[0]
    z = (mean - mean.mean(0)) / (mean.std(0) + 1e-6)
    return float(ndcg_at_k(rank(baseline_embeddings("meanpool", None, None, (z,)), False), test.artists))


def _stat(values: list[float]) -> str:
    """mean ± sd (ddof 1) over the splits, 4 decimals."""
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"


def trained(names: list[str], seeds: int, config: Path = RECIPE) -> C.Section:
    """The table of the issue: per front end, untrained rows and the trained recipe, mean ± sd over splits."""
    per = {n: [trained_split(n, s, config) for s in range(seeds)] for n in names}
    rows = [[n, *(_stat([r[c] for r in per[n]]) for c in TRAINED_COLS),
             C.fmt(np.mean([r["cpu"] for r in per[n]]), 0), C.fmt(np.mean([r["epochs"] for r in per[n]]), 0)]
            for n in names]
    met = None
    if "dsp" in per and "musicnn-msd" in per:
        gap = [m["whole pipeline"] - d["whole pipeline"] for m, d in zip(per["musicnn-msd"], per["dsp"])]
        met = bool(np.mean(gap) >= 0.05)
        rows.append(["musicnn-msd − dsp (paired)", *("" for _ in TRAINED_COLS[:-2]), _stat(gap), "", "", ""])
    first = per[names[0]][0]
    n_val = sorted({r["validation artists"] for n in names for r in per[n]})
    settings = "; ".join(f"{n} split {i} (validation nDCG@100 {r['validation']['transformer alone']:.3f}, "
                         f"{r['epochs']} epochs): " + ", ".join(f"{k} {v}" for k, v in r["settings"].items())
                         for n in names for i, r in enumerate(per[n]))
    return C.Section(
        "Front ends on real music, untrained and trained (3 artist-disjoint splits)",
        C.markdown_table(["front end", *TRAINED_COLS, "training CPU-s", "epochs"], rows, "l" + "r" * (len(TRAINED_COLS) + 2)),
        target="whole pipeline on musicnn-msd >= the same on dsp + 0.05 test nDCG@100", met=met,
        notes=f"Test nDCG@100, mean ± sd over {seeds} artist-disjoint splits of the real set (30% of the "
              f"artists in test; {first['tracks']['train']} train / {first['tracks']['test']} test tracks in "
              "split 0), every front end on the same splits, all 81 windows per track (featurize's framing). "
              "mean-pool, LDA, tuned LDA and tuned WCCN (shrinkage and directions chosen on validation) are "
              "`evaluate`'s baseline rows; standardised divides each pooled mean by its spread over the test tracks. "
              f"transformer alone: {config.relative_to(C.SRC) if config.is_relative_to(C.SRC) else config.name} "
              "trained by `artistsim train` (one thread); whole pipeline: `evaluate`'s last inference add-on "
              f"row, every add-on chosen on the validation artists ({'-'.join(map(str, n_val))} held out of "
              "the train artists by the config's val_fraction and val_min_artists). Per split, the transformer's "
              f"validation nDCG@100, its epochs (of 43) and the add-on settings chosen: {settings}.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("pool", "quality", "speed", "trained"))
    p.add_argument("frontend", nargs="*", help="pool: the front end (dsp); trained: the front ends (dsp musicnn-msd)")
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--tracks", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--tf", help="python of a scratch environment with TensorFlow and musicnn (speed reference)")
    p.add_argument("--config", type=Path, default=RECIPE,
                   help="trained: a variant of the recipe's config (its runs cached apart; give --json)")
    p.add_argument("--json", type=Path, default=RESULTS, help="result file (run_all passes its own)")
    p.add_argument("--full", action="store_true", help="accepted for run_all: every table here is full-size")
    p.add_argument("--quick", action="store_true", help="accepted for run_all: the result is labelled quick")
    args = p.parse_args(argv)
    if args.what == "pool":
        print(pool((args.frontend or ["dsp"])[0], args.stride))
        return 0
    facts = C.machine_facts()
    if args.what == "quality":
        section = quality()
    elif args.what == "speed":
        section = speed(args.tracks, args.tf, args.repeats)
    else:
        if args.config != RECIPE and args.json == RESULTS:
            p.error("--config: give --json, so a variant's table never replaces the recipe's")
        section = trained(args.frontend or ["dsp", "musicnn-msd"], args.splits, args.config)
    result = C.make_result("frontends", "Front ends: real-music quality and musicnn speed",
                           "quick" if args.quick else "full",
                           "bench_frontends.py", argv if argv is not None else sys.argv[1:], [section], facts)
    C.emit(result, args.json, merge=True)  # each subcommand refreshes its own table, keeps the others
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
