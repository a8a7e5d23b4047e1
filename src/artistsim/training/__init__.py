"""How a model learns: artist batches (`sampling`), augmentation (`augment`), the losses
(`losses`, with the memory-efficient chunked autograd function in `chunked_loss`), and the
curriculum training loop with checkpoints and DDP (`loop`, `distributed`).
"""
