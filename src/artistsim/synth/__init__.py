"""Synthetic data in the competition layout: presets, the generator and the writer.

`plan` holds the presets and each split's plan (who has how many tracks of what length),
`nuisance` the knobs that make a set harder than its artists (albums, genres, duplicates),
`generator` the frames themselves, `writer` the folder on disk. Nothing here imports the
rest of artistsim but `atomic`: the generator is a product of its own, used by the demo,
the tests and the benchmarks alike.
"""

from artistsim.synth.generator import FEATURE_DIM, iter_split, sample_split
from artistsim.synth.plan import PRESETS, SplitPlan, SynthError, SynthPreset, resolve_preset, split_plan
from artistsim.synth.writer import generate

__all__ = ["FEATURE_DIM", "PRESETS", "SplitPlan", "SynthError", "SynthPreset", "generate", "iter_split",
           "resolve_preset", "sample_split", "split_plan"]
