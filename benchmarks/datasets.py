"""Synthetic datasets for the benchmarks, made once in a scratch folder outside the repository."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from artistsim.synth.plan import SynthPreset

# Scratch data (synthetic datasets, stores) lives outside the repository.
SCRATCH = Path(os.environ.get("ARTISTSIM_BENCH_DIR", "/tmp/artistsim_bench"))


def synth_dataset(preset: str, seed: int = 0, packed: bool = True, spec: SynthPreset | None = None) -> Path:
    """A synthetic dataset (competition layout) under SCRATCH, made once and reused.

    `spec` generates a variant the generator has no name for (e.g. a larger `holdout`);
    `preset` then only names its folder.

    Made in a temporary folder and renamed when complete, so an interrupted run never
    leaves a half-written dataset that later runs would trust.
    """
    from artistsim.synth import generate

    out = SCRATCH / f"{preset}_seed{seed}"
    if not (out / "train_meta.tsv").exists():
        tmp = SCRATCH / f".{preset}_seed{seed}.partial"
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        print(f"[bench] generating synthetic '{preset}' data in {out} (once) ...", file=sys.stderr, flush=True)
        generate(tmp, spec or preset, seed=seed, progress=False)
        tmp.rename(out)
    if packed:
        from artistsim.data.store import pack_split

        for split in ("train", "test"):
            pack_split(out, split, progress=False)
    return out
