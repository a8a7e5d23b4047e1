"""Artist-disjoint batches: each batch holds every track of N whole artists.

Why whole artists: pairwise metric losses need many positives per anchor, and keeping
an artist in one batch per epoch means its tracks are only ever contrasted with other
artists' tracks. The seed selected artists by comparing artist ids with positions in
the artist list, so with non-contiguous ids some artists were never trained on; here
artists are grouped by their actual ids.
"""

from __future__ import annotations

import numpy as np


class ArtistBatchSampler:
    """Per-epoch list of batches (arrays of row indices), artists reshuffled each epoch.

    With `world_size` > 1 (DistributedDataParallel) the epoch's batches are dealt round-
    robin to ranks and cut to a common count, so every rank takes the same number of
    steps and no artist appears on two ranks in one epoch.
    """

    def __init__(self, artists: np.ndarray, artists_per_batch: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, drop_single: bool = False):
        artists = np.asarray(artists)
        self.unique, inverse, counts = np.unique(artists, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        self._rows_by_artist = np.split(order, np.cumsum(counts)[:-1])
        self._keep = np.flatnonzero(counts >= 2) if drop_single else np.arange(len(self.unique))
        self.artists_per_batch = artists_per_batch
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def __len__(self) -> int:
        n_batches = -(-len(self._keep) // self.artists_per_batch)
        return n_batches // self.world_size if self.world_size > 1 else n_batches

    def batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches for `epoch`; deterministic in (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        perm = self._keep[rng.permutation(len(self._keep))]
        groups = [perm[i : i + self.artists_per_batch] for i in range(0, len(perm), self.artists_per_batch)]
        if self.world_size > 1:
            groups = groups[: len(self) * self.world_size][self.rank :: self.world_size]
        return [np.concatenate([self._rows_by_artist[a] for a in g]) for g in groups]
