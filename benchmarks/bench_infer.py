"""Inference: full-length vs rolling-window embedding, for both seed encoders.

The seed encoders (transformer d 512 / 4 heads / 3 layers / ff 2048; conformer 512 /
4 heads / ffn 128 / 4 layers / kernel 31) at their published sizes, randomly initialised
(speed does not depend on the weights), embed the same test tracks of a synthetic
dataset from its packed store with:

- `infer.embed_full` (each track whole; batches sorted by length, padded to their own
  longest track);
- `infer.embed_windows` (the seed's windows of 10 frames, hop 5: 15 windows per 81-frame
  track, each embedded as a short track, then averaged).

The model FLOPs of each (benchmarks/flops.py) over the rate of a square fp32 matmul
measured in the same process give the utilisation.

    python -m benchmarks.bench_infer --quick   # 120 tracks
    python -m benchmarks.bench_infer --full    # 600 tracks

No target in the tracker: the table says what rolling windows cost per track.
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks import common as C
from benchmarks import flops as model_flops


def run(args, tracks: int) -> tuple[list[dict], float]:
    import torch

    from artistsim.config import ConformerConfig, TransformerConfig
    from artistsim.data.splits import load_split
    from artistsim.embed import embed_full, embed_windows, window_plan
    from artistsim.models import build_model

    data_dir = C.synth_dataset(args.preset)
    split = load_split(data_dir, "test", progress=False)
    rows = np.arange(min(tracks, len(split.meta)))
    lengths = split.source.lengths[rows]
    _, _, win_len = window_plan(lengths, 10, 5)
    device = torch.device("cpu")
    rate = C.matmul_rate()
    results = []
    for cfg in (TransformerConfig(), ConformerConfig()):
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        embed_full(model, split.source, rows[:16], device, progress=False)  # warm-up
        for method, fn, flops in (
            ("full", lambda: embed_full(model, split.source, rows, device, batch_size=args.batch_size,
                                        progress=False), model_flops.forward_flops(cfg, lengths)),
            ("windows", lambda: embed_windows(model, split.source, rows, device, window=10, hop=5,
                                              batch_size=4 * args.batch_size, progress=False),
             model_flops.forward_flops(cfg, win_len)),
        ):
            C.log(f"infer: {cfg.kind} {method} on {len(rows)} tracks")
            t, emb = C.time_call(fn)
            results.append({"model": cfg.kind, "method": method, "tracks": len(rows), "timing": t,
                            "flops": flops, "windows": len(win_len) if method == "windows" else len(rows)})
    rate = max(rate, C.matmul_rate())
    return results, rate


def section(results: list[dict], rate: float, preset: str) -> C.Section:
    rows = []
    for r in results:
        t: C.Timing = r["timing"]
        full = next(x for x in results if x["model"] == r["model"] and x["method"] == "full")["timing"]
        label = {"full": "`embed_full`", "windows": "`embed_windows` (10, hop 5)"}[r["method"]]
        rows.append([r["model"], label, r["windows"], C.fmt(t.wall), C.fmt(t.cpu), C.fmt(r["tracks"] / t.wall, 1),
                     C.fmt(t.wall / full.wall), C.fmt(r["flops"] / r["tracks"] / 1e9, 3),
                     C.fmt(r["flops"] / t.wall / 1e9, 1), f"{100 * r['flops'] / t.wall / rate:.0f}%"])
    tbl = C.markdown_table(["encoder", "method", "sequences", "wall s", "CPU s", "tracks/s", "time / full",
                            "GFLOP / track", "GFLOP/s", "of matmul rate"], rows, "llrrrrrrrr")
    loads = [x["timing"].load_before for x in results] + [x["timing"].load_after for x in results]
    return C.Section(
        heading=f"Embedding {results[0]['tracks']} test tracks (synth `{preset}`), seed encoders, CPU",
        table=tbl, target="", met=None, load=(min(loads), max(loads)),
        notes=(f"Matmul rate in this process: {rate / 1e9:.0f} GFLOP/s. FLOPs count matrix products only "
               "(benchmarks/flops.py). Windows compute ~1.85x the frame positions of full tracks (15 x 10 vs 81) "
               "but with 10-frame attention, and many more, smaller sequences."),
    )


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__)
    parser.add_argument("--tracks", type=int, help="test tracks embedded (default 120 quick / 600 full)")
    parser.add_argument("--preset", default="demo", help="synth preset the tracks come from")
    parser.add_argument("--batch-size", type=int, default=256, help="tracks per batch (windows: 4x)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    C.set_threads(args.threads)
    facts = C.machine_facts()
    tracks = args.tracks or (600 if args.full else 120)
    results, rate = run(args, tracks)
    result = C.make_result("infer", "Inference: full-length vs rolling windows", C.mode_of(args), "bench_infer.py",
                           argv, [section(results, rate, args.preset)], facts)
    C.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
