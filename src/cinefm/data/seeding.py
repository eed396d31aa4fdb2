"""Reproducible randomness for data loading, independent of the number of workers.

The training sampler (:class:`SeededSampler`) runs in the main process and yields
``(index, item_seed)`` pairs; a dataset builds ``numpy.random.default_rng(item_seed)`` for
everything random in that item (temporal phase, sentences, AugMix, SAX subset). An item
therefore comes out the same whichever worker loads it, so the same seed gives the same
batches with 0, 2 or 16 workers. The epoch enters the seeds through ``set_epoch`` (Lightning
calls it, also through its distributed sampler wrapper). Evaluation loaders pass plain
indices and datasets derive the seed from the index: identical every epoch.

:func:`seed_worker` additionally seeds ``random`` and ``numpy``'s global state in each
worker from torch's per-worker seed, for any library code that uses them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` (BLAKE2b of their text): same parts, same seed, any process."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def unpack_key(key: int | tuple[int, int], dataset_seed: int) -> tuple[int, int]:
    """``index`` or ``(index, item_seed)`` -> ``(index, item_seed)``; plain indices seed from the index."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return int(key), stable_seed(dataset_seed, "eval", int(key))


class SeededSampler(Sampler):
    """Yield ``(index, item_seed)`` for ``n`` items, shuffled or not, from ``(seed, epoch)``.

    Each pass uses the current epoch and then advances it, unless ``set_epoch`` is called
    before the next pass (as Lightning does).
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle = int(n), int(seed), shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next pass."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        gen = torch.Generator().manual_seed(stable_seed(self.seed, "epoch", self.epoch))
        order = torch.randperm(self.n, generator=gen) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=gen)
        self.epoch += 1
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed ``random`` and ``numpy`` from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
