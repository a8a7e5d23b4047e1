"""How a model learns: artist batches (`sampling`), augmentation (`augment`), the losses
(`losses`, with the memory-efficient chunked autograd function in `chunked_loss`), and the
curriculum training loop with checkpoints and DDP (`loop`, `distributed`).
"""

from artistsim.training.loop import CropLoader, make_optimizer, prepare_data, train_epoch

# The loop's parts, public for callers that time one step of it against a bare loop
# (benchmarks/bench_train.py) without reaching into the module.
__all__ = ["CropLoader", "make_optimizer", "prepare_data", "train_epoch"]
