"""Training throughput and model FLOPs utilisation (MFU): the real trainer vs a bare loop.

For each seed encoder (transformer, conformer; published sizes) at crops 10, 40 and 81
with batches of whole artists scaled to fit (64 / 32 / 16 artists; a quarter in --quick):

- real trainer: `artistsim.training.loop.train_epoch` fed by `CropLoader` (background thread)
  over the `PackedStore` of a synthetic dataset, `ArtistBatchSampler` batches,
  `build_loss` (the seed's summed loss), `make_optimizer` (AdamW), augmentation on the
  crop-81 stage as the seed's last stage;
- bare loop (the baseline, same run): the same model in a plain PyTorch loop on random
  tensors already in memory, batch sizes identical to the real batches, loss
  `emb.square().mean()`, AdamW.

MFU = model FLOPs per second / the rate of a square fp32 matmul in the same process;
model FLOPs are counted analytically (benchmarks/flops.py: matrix products only,
training = 3x forward). Then a profile of the real trainer at crop 81 (transformer):
time per phase of a step (replicating train_epoch's calls with timers) and the top
operators by self CPU time from torch.profiler.

    python -m benchmarks.bench_train --quick   # synth `demo`, 1 timed step per case
    python -m benchmarks.bench_train --full    # synth `small`, 4 timed steps per case

Target (tracker issue): >= 60% MFU end to end for the transformer at crop 81 (a bare
loop reached ~70% on an idle machine: 27 tracks/s at crop 81, 208 at crop 10).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from benchmarks import common as C
from benchmarks import flops as model_flops

CASES = ((10, 64), (40, 32), (81, 16))  # (crop, artists per batch) at full size
MODELS = ("transformer", "conformer")


def train_config(kind: str, crop: int, artists: int):
    from artistsim.config import ConformerConfig, StageConfig, TrainConfig, TransformerConfig

    model = TransformerConfig() if kind == "transformer" else ConformerConfig()
    stage = StageConfig(artists_per_batch=artists, crop=crop, lr=1e-5, augment=crop == 81)
    return TrainConfig(model=model, stages=[stage])


class Trainer:
    """The real trainer's pieces for one (model, crop, batch) case, over many epochs."""

    def __init__(self, data, cfg, seed: int = 0):
        import torch

        from artistsim.models import build_model
        from artistsim.training import make_optimizer
        from artistsim.training.losses import build_loss
        from artistsim.training.sampling import ArtistBatchSampler

        self.data, self.cfg, self.stage = data, cfg, cfg.stages[0]
        torch.manual_seed(seed)
        self.model = build_model(cfg.model)
        self.loss_fn = build_loss(cfg.loss, num_classes=len(data.label_ids), embedding_dim=cfg.model.embedding_dim)
        self.optimizer = make_optimizer(self.model, self.loss_fn, cfg, self.stage)
        self.sampler = ArtistBatchSampler(data.split.artists[data.train_rows], self.stage.artists_per_batch, seed=seed)
        self.epoch = 0
        self.device = torch.device("cpu")

    def batches(self, steps: int) -> list[np.ndarray]:
        """The next `steps` batches (rows of the split), crossing epochs as needed."""
        out: list[np.ndarray] = []
        while len(out) < steps:
            out += [self.data.train_rows[b] for b in self.sampler.batches(self.epoch)]
            self.epoch += 1
        return out[:steps]

    def loader(self, batches: list[np.ndarray], seed: int):
        from artistsim.training import CropLoader

        return CropLoader(self.data.split.source, batches, self.data.labels, self.stage.crop, self.cfg.pad_mode,
                          np.random.default_rng(seed), prefetch=max(1, self.cfg.num_workers) + 1)

    def run(self, batches: list[np.ndarray], seed: int = 0) -> None:
        """train_epoch over exactly these batches."""
        import torch

        from artistsim.training import train_epoch

        gen = torch.Generator().manual_seed(seed)
        train_epoch(self.model, self.loss_fn, self.optimizer, self.loader(batches, seed), self.cfg, self.stage,
                    self.device, gen, None, max_steps=len(batches))


def bare_loop(cfg, sizes: list[int], crop: int, fused: bool = False) -> C.Timing:
    """The same model, AdamW, random in-memory inputs, trivial loss; one warm-up step."""
    import torch

    from artistsim.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=cfg.weight_decay,
                            **({"fused": True} if fused else {}))
    x = torch.randn(max(sizes), crop, cfg.model.input_dim)
    lengths = torch.full((max(sizes),), crop, dtype=torch.int64)

    def step(b: int) -> None:
        emb = model(x[:b], lengths[:b])
        loss = emb.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    import resource

    step(sizes[0])
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    with C.timed() as t:
        for b in sizes:
            step(b)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    t.usage = {"user": usage1.ru_utime - usage0.ru_utime, "sys": usage1.ru_stime - usage0.ru_stime,  # type: ignore[attr-defined]
               "minflt": usage1.ru_minflt - usage0.ru_minflt}
    return t


def run_case(data, kind: str, crop: int, artists: int, steps: int) -> dict:
    cfg = train_config(kind, crop, artists)
    trainer = Trainer(data, cfg)
    trainer.run(trainer.batches(1), seed=1)  # warm-up: allocator, thread pools, first-call costs
    batches = trainer.batches(steps)
    sizes = [len(b) for b in batches]
    rate_before = C.matmul_rate()
    C.log(f"train {kind} crop {crop}: real trainer, {steps} steps of ~{np.mean(sizes):.0f} tracks")
    t_real, _ = C.time_call(lambda: trainer.run(batches, seed=2))
    C.log(f"train {kind} crop {crop}: bare loop")
    t_bare = bare_loop(cfg, sizes, crop)
    rate = max(rate_before, C.matmul_rate())
    flops = model_flops.train_flops(cfg.model, np.full(sum(sizes), crop))
    return {"model": kind, "crop": crop, "artists": artists, "steps": steps, "tracks": sum(sizes),
            "mean_batch": float(np.mean(sizes)), "real": t_real, "bare": t_bare, "flops": flops, "rate": rate,
            "augment": cfg.stages[0].augment}


# --------------------------------------------------------------------------- profile


def phase_profile(data, kind: str, crop: int, artists: int, steps: int) -> dict:
    """Seconds per phase of the real trainer's step, replicating train_epoch's calls."""
    import torch

    from artistsim.embed import autocast
    from artistsim.training.augment import augment_batch

    cfg = train_config(kind, crop, artists)
    tr = Trainer(data, cfg)
    tr.run(tr.batches(1), seed=1)
    phases = dict.fromkeys(("wait for batch", "augment", "forward", "loss", "zero_grad + backward",
                            "optimizer step", "loss.item"), 0.0)
    import resource

    gen = torch.Generator().manual_seed(3)
    loader = tr.loader(tr.batches(steps), seed=3)
    tr.model.train()
    it = iter(loader)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    with C.timed() as total:
        for _ in range(steps):
            t0 = time.perf_counter()
            x, lengths, labels = next(it)
            t1 = time.perf_counter()
            if tr.stage.augment:
                x = augment_batch(x, lengths, cfg.augment, gen)
            t2 = time.perf_counter()
            with autocast(tr.device):
                emb = tr.model(x, lengths)
            t3 = time.perf_counter()
            loss = tr.loss_fn(emb.float(), labels)
            t4 = time.perf_counter()
            tr.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t5 = time.perf_counter()
            tr.optimizer.step()
            t6 = time.perf_counter()
            float(loss.detach())
            t7 = time.perf_counter()
            for name, a, b in zip(phases, (t0, t1, t2, t3, t4, t5, t6), (t1, t2, t3, t4, t5, t6, t7)):
                phases[name] += b - a
        for _ in it:  # drain the loader thread
            pass
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"phases": phases, "total": total, "steps": steps, "minflt": usage1.ru_minflt - usage0.ru_minflt,
            "sys": usage1.ru_stime - usage0.ru_stime, "user": usage1.ru_utime - usage0.ru_utime}


def op_profile(data, kind: str, crop: int, artists: int, rows: int = 12) -> str:
    """torch.profiler's top operators by self CPU time over two real trainer steps."""
    from torch.profiler import ProfilerActivity, profile

    cfg = train_config(kind, crop, artists)
    tr = Trainer(data, cfg)
    tr.run(tr.batches(1), seed=1)
    batches = tr.batches(2)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tr.run(batches, seed=4)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    table_rows = [[f"`{e.key}`", e.count, C.fmt(e.self_cpu_time_total / 1e6, 3),
                   f"{100 * e.self_cpu_time_total / total:.1f}%"] for e in events[:rows]]
    return C.markdown_table(["operator", "calls", "self CPU s", "share"], table_rows, "lrrr")


# --------------------------------------------------------------------------- what-if variants

# Bare-loop variants behind train.py's settings, each in a fresh process (the allocator
# setting is process-wide): name -> (environment, fused AdamW).
VARIANTS = {
    "malloc as is, default AdamW": ({"ARTISTSIM_MALLOC": "default"}, False),
    "malloc tuned (artistsim.runtime)": ({}, False),
    "malloc tuned + fused AdamW (artistsim)": ({}, True),
}


def variant_child(args) -> dict:
    """Bare loop of one variant in this process: wall, user/sys CPU and page faults."""
    cfg = train_config(args.kind, args.crop, 2)
    sizes = [args.batch] * args.steps
    t = bare_loop(cfg, sizes, args.crop, fused=VARIANTS[args.child_variant][1])  # + 1 warm-up step
    flops = model_flops.train_flops(cfg.model, np.full(args.batch * len(sizes), args.crop))
    return {"variant": args.child_variant, "wall": t.wall, "cpu": t.cpu, "steps": len(sizes), **t.usage,
            "flops": flops, "rate": C.matmul_rate(), "load": (t.load_before, t.load_after)}


def variants_section(kind: str, crop: int, batch: int, steps: int, threads: int) -> C.Section:
    import os

    results, loads = [], []
    for name, (env, _) in VARIANTS.items():
        C.log(f"variant: {name} (fresh process)")
        cmd = C.child_command("bench_train.py", "--child-variant", name, "--kind", kind, "--crop", str(crop),
                              "--batch", str(batch), "--steps", str(steps), "--threads", str(threads))
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            r = C.run_child(cmd)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        results.append((name, r))
    # One matmul rate for every row (the best any child measured): a child's own rate,
    # measured once after its loop, swings with the neighbours' load.
    rate = max((r["rate"] for _, r in results if "error" not in r), default=float("nan"))
    rows, base = [], None
    for name, r in results:
        if "error" in r:
            rows.append([name, "FAILED", r["error"], "", "", "", "", ""])
            continue
        base = base or r
        loads += list(r["load"])
        per = r["steps"]
        rows.append([name, C.fmt(r["wall"] / per), C.fmt(r["user"] / per), C.fmt(r["sys"] / per),
                     f"{r['minflt'] / per:,.0f}", C.fmt(base["wall"] / r["wall"]),
                     f"{100 * r['flops'] / r['wall'] / rate:.0f}%", C.fmt(r["rate"] / 1e9, 0)])
    tbl = C.markdown_table(["bare loop variant (fresh process)", "s / step", "user CPU s / step",
                            "system CPU s / step", "page faults / step", "speed-up", "MFU (best rate)", "own matmul GFLOP/s"],
                           rows, "lrrrrrrr")
    return C.Section(
        heading=f"What-if: optimizer and allocator ({kind}, crop {crop}, {batch} tracks, bare loop)", table=tbl,
        target="", met=None, load=(min(loads), max(loads)) if loads else None,
        notes=("'fused AdamW' = `torch.optim.AdamW(..., fused=True)` (one kernel over all parameters instead of "
               "a dozen elementwise passes per tensor; `train.make_optimizer` uses it). 'malloc tuned' = "
               "`artistsim.runtime.tune_allocator` (what the CLI and every benchmark process run; 'as is' sets "
               "`ARTISTSIM_MALLOC=default`): large tensors come from glibc's heap and freed pages are kept, so a "
               "step's activations reuse the previous step's pages instead of page-faulting fresh zeroed ones "
               "(memory is then not returned to the OS until exit; the peak is unchanged)."),
    )


def crop81_variants(scale: int, steps: int, threads: int) -> C.Section:
    """The what-if table for the transformer at the last stage's crop and batch size."""
    crop, artists = CASES[-1]
    batch = int(round(artists // scale * 10.6))  # whole artists average ~10.6 tracks
    return variants_section("transformer", crop, batch, steps, threads)


# --------------------------------------------------------------------------- tables


def padding_share(lengths: np.ndarray, crop: int) -> float:
    """Share of a crop batch's frame positions that are wrap padding of short tracks.

    Crop batches are always exactly `crop` frames wide; a track shorter than the crop is
    wrap-padded and the padding is masked, but the encoder still computes on it.
    """
    lengths = np.asarray(lengths)
    return float(np.sum(crop - np.minimum(lengths, crop)) / (len(lengths) * crop))


def throughput_section(cases: list[dict], lengths: np.ndarray | None = None) -> C.Section:
    rows = []
    met = None
    for r in cases:
        real, bare = r["real"], r["bare"]
        mfu_real = r["flops"] / real.wall / r["rate"]
        mfu_bare = r["flops"] / bare.wall / r["rate"]
        rows.append([r["model"], r["crop"], f"{r['artists']} ({r['mean_batch']:.0f})",
                     "yes" if r["augment"] else "no", r["steps"],
                     C.fmt(r["tracks"] / real.wall, 1), C.fmt(r["tracks"] / bare.wall, 1),
                     C.fmt(bare.wall / real.wall), f"{100 * mfu_real:.0f}%", f"{100 * mfu_bare:.0f}%",
                     C.fmt(real.cpu / real.wall), C.fmt(r["rate"] / 1e9, 0)])
        if r["model"] == "transformer" and r["crop"] == 81:
            met = mfu_real >= 0.60
    tbl = C.markdown_table(
        ["encoder", "crop", "artists (tracks) / batch", "augment", "timed steps", "real tracks/s",
         "bare tracks/s", "real / bare", "real MFU", "bare MFU", "CPU-s / s (real)", "matmul GFLOP/s"],
        rows, "lrrlrrrrrrrr")
    loads = [x for r in cases for x in (r["real"].load_before, r["bare"].load_after)]
    return C.Section(
        heading="Tracks per second and MFU: real trainer vs bare PyTorch loop", table=tbl,
        target="transformer at crop 81: real trainer >= 60% MFU", met=met, load=(min(loads), max(loads)),
        notes=("MFU = analytic model FLOPs (matrix products, training = 3x forward; benchmarks/flops.py) per "
               "second over the square-matmul rate measured in the same process. Batch sizes are the real "
               "whole-artist batches, in both loops. Real-trainer batches at crop 81 are augmented (the seed's "
               "last stage)." + ("" if lengths is None else " Computed frames that are wrap padding of short "
               "tracks (masked, but computed): " + ", ".join(
                   f"{100 * padding_share(lengths, c):.1f}% at crop {c}" for c in sorted({r['crop'] for r in cases}))
               + ".")),
    )


def profile_section(prof: dict, ops: str, kind: str, crop: int) -> C.Section:
    total = prof["total"].wall
    rows = [[name, C.fmt(sec / prof["steps"], 3), f"{100 * sec / total:.1f}%"] for name, sec in prof["phases"].items()]
    rows.append(["(all phases)", C.fmt(total / prof["steps"], 3), "100%"])
    tbl = C.markdown_table(["phase of one step", "s / step", "share"], rows, "lrr")
    n = prof["steps"]
    tbl += (f"\n\nPer step: {prof['user'] / n:.2f} s user CPU, {prof['sys'] / n:.2f} s system CPU, "
            f"{prof['minflt'] / n:,.0f} minor page faults (fresh pages for the step's activations).")
    return C.Section(heading=f"Where the real trainer's time goes ({kind}, crop {crop})",
                     table=tbl + "\n\nTop operators (torch.profiler, two steps, self CPU time):\n\n" + ops,
                     target="", met=None, load=(prof["total"].load_before, prof["total"].load_after))


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__)
    parser.add_argument("--preset", help="synth preset (default demo, small with --full)")
    parser.add_argument("--steps", type=int, help="timed steps per case (default 1 quick / 4 full)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--crops", type=int, nargs="+", help="subset of crops 10 40 81")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--only-variants", action="store_true",
                        help="re-measure only the what-if table (the other tables of the last run are kept)")
    parser.add_argument("--child-variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--crop", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    C.set_threads(args.threads)
    if args.child_variant:
        print(json.dumps(variant_child(args)))
        return 0
    from artistsim.training import prepare_data

    facts = C.machine_facts()
    steps = args.steps or (4 if args.full else 1)
    scale = 1 if args.full else 4
    if args.only_variants:  # random in-memory inputs: no dataset needed
        C.emit(C.make_result("train", "Training throughput", C.mode_of(args), "bench_train.py", argv,
                             [crop81_variants(scale, steps, args.threads)], facts), args.json, merge=True)
        return 0
    preset = args.preset or ("small" if args.full else "demo")
    data_dir = C.synth_dataset(preset)
    facts["dataset"] = f"synth {preset} at {data_dir}"
    data = prepare_data(data_dir, train_config("transformer", 10, 2), progress=False)
    cases = []
    for kind in args.models:
        for crop, artists in CASES:
            if args.crops and crop not in args.crops:
                continue
            cases.append(run_case(data, kind, crop, artists // scale, steps))
    sections = [throughput_section(cases, data.split.source.lengths[data.train_rows])]
    if not args.no_profile:
        crop, artists = CASES[-1]
        C.log("profile: phases of the transformer at crop 81")
        prof = phase_profile(data, "transformer", crop, artists // scale, steps)
        C.log("profile: torch.profiler")
        ops = op_profile(data, "transformer", crop, artists // scale)
        sections.append(profile_section(prof, ops, "transformer", crop))
    if not args.no_variants:
        sections.append(crop81_variants(scale, steps, args.threads))
    result = C.make_result("train", "Training throughput", C.mode_of(args), "bench_train.py", argv, sections, facts)
    C.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
