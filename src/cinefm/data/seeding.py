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
from torch.utils.data import DataLoader, DistributedSampler, Sampler


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


class RankStridedSampler(DistributedSampler):
    """Rank ``rank``'s share of ``sampler``'s pass: keys ``rank, rank + W, rank + 2W, …`` (W = ``num_replicas``).

    With batch B per rank, step k's global batch is then keys ``[k·B·W, (k+1)·B·W)`` of
    the one-process order: W processes of batch B train on exactly the batches one
    process of batch W·B would, and a run resumed on another number of processes
    continues the same sequence of global batches. (Lightning's own wrapper reshuffles
    the keys with its own seed instead.) The pass is padded to a multiple of W by
    repeating its first keys, as :class:`torch.utils.data.DistributedSampler` does.
    """

    def __init__(self, sampler: Sampler, num_replicas: int, rank: int) -> None:
        super().__init__(sampler, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator:
        keys = list(self.sampler)
        if not keys:
            return iter([])
        while len(keys) < self.total_size:
            keys += keys[: self.total_size - len(keys)]
        return iter(keys[self.rank:self.total_size:self.num_replicas])


def rank_strided(loader: DataLoader, num_replicas: int, rank: int) -> DataLoader:
    """``loader`` with its sampler replaced by a :class:`RankStridedSampler` (unchanged for one process)."""
    if num_replicas <= 1 or loader.sampler is None:
        return loader
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=RankStridedSampler(loader.sampler, num_replicas, rank),
        num_workers=loader.num_workers, collate_fn=loader.collate_fn, worker_init_fn=loader.worker_init_fn,
        generator=loader.generator, persistent_workers=loader.persistent_workers, pin_memory=loader.pin_memory,
        drop_last=loader.drop_last)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed ``random`` and ``numpy`` from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
