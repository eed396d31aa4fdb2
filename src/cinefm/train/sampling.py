"""Pre-training batches without two clips of one study (``pretrain.study_batches``).

The contrastive loss treats every other pair of a batch as a negative. Drawing clips
(one per series: a LAX view or a SAX slice, ~12 per study) at random puts two clips of
the same study into one batch whenever the cohort has few studies per batch: their
reports are the same, yet the loss pushes them apart (false negatives; with 22 studies
and a batch of 8, two in three batches hold such a pair). :class:`StudyBatchSampler`
builds every batch from distinct studies, as the "unique instances per batch" samplers
of CLIP-style training on repeated captions do.

Per epoch (seeded by ``seed`` and the epoch, as :class:`~cinefm.data.seeding.SeededSampler`):
each study's clips are shuffled into a queue; each batch draws ``batch_size`` distinct
studies with probability proportional to the clips they have left (so the epoch uses
every clip about once) and takes the next clip of each. When fewer than ``batch_size``
studies have clips left, the rest of the batch comes from other studies' already used
clips. An epoch is ``len(clips) // batch_size`` batches (every clip once, the remainder
dropped), each item keyed ``(index, item_seed)`` (:mod:`cinefm.data.seeding`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from cinefm.config import ConfigError
from cinefm.data.collate import ClipCollate
from cinefm.data.datamodules import PretrainDataModule
from cinefm.data.seeding import rank_strided, seed_worker, stable_seed

log = logging.getLogger(__name__)


class StudyBatchSampler(Sampler):
    """Batches of ``(index, item_seed)`` keys whose items all come from different studies (module docstring).

    ``studies``: the study id of every dataset item (item i belongs to ``studies[i]``).
    Needs at least ``batch_size`` distinct studies.
    """

    def __init__(self, studies: Sequence[str], batch_size: int, seed: int) -> None:
        codes, self._study = np.unique(np.asarray(studies, dtype=str), return_inverse=True)
        self.batch_size, self.seed = int(batch_size), int(seed)
        if len(codes) < self.batch_size:
            raise ConfigError(f"pretrain.study_batches: {len(codes)} training studies are fewer than "
                              f"pretrain.batch_size {self.batch_size}; lower the batch size or set "
                              "pretrain.study_batches: false")
        self._members = [np.flatnonzero(self._study == s) for s in range(len(codes))]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next pass (Lightning calls this before every epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._study) // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng(stable_seed(self.seed, "study-batches", self.epoch))
        self.epoch += 1
        queues = [list(rng.permutation(m)) for m in self._members]
        left = np.array([len(q) for q in queues], dtype=np.float64)
        batches = []
        for _ in range(len(self)):
            open_ = np.flatnonzero(left > 0)
            take = min(self.batch_size, len(open_))
            chosen = list(rng.choice(open_, size=take, replace=False, p=left[open_] / left[open_].sum()))
            if take < self.batch_size:  # the tail of the epoch: fill with other studies' clips
                rest = np.setdiff1d(np.arange(len(queues)), chosen)
                chosen += list(rng.choice(rest, size=self.batch_size - take, replace=False))
            batch = []
            for s in chosen:
                if left[s] > 0:
                    batch.append(int(queues[s].pop()))
                    left[s] -= 1
                else:
                    batch.append(int(rng.choice(self._members[s])))
            seeds = rng.integers(0, 2**62, size=len(batch))
            batches.append([(i, int(x)) for i, x in zip(batch, seeds, strict=True)])
        return iter(batches)


class StudyBatchDataModule(PretrainDataModule):
    """:class:`~cinefm.data.datamodules.PretrainDataModule` whose training batches hold distinct studies."""

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        sampler = StudyBatchSampler(list(dataset.series["study_id"]), self.batch_size, self.seed)
        return DataLoader(dataset, batch_sampler=sampler, num_workers=self.num_workers,
                          collate_fn=ClipCollate(self.special.pad), worker_init_fn=seed_worker,
                          generator=torch.Generator().manual_seed(self.seed),
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())


class StridedPretrainDataModule(PretrainDataModule):
    """:class:`~cinefm.data.datamodules.PretrainDataModule` whose DDP ranks share each global batch in order.

    Under DDP the training sampler is a :class:`~cinefm.data.seeding.RankStridedSampler`:
    the global batches are those of one process with the global batch size, whatever
    the number of processes (Lightning leaves a DistributedSampler as it is).
    """

    def train_dataloader(self) -> DataLoader:
        loader = super().train_dataloader()
        trainer = self.trainer
        if trainer is None:
            return loader
        return rank_strided(loader, trainer.world_size, trainer.global_rank)


def pretrain_datamodule(config: Mapping, **paths) -> PretrainDataModule:
    """The pre-training DataModule of ``config``: study-distinct batches when ``pretrain.study_batches``."""
    cls = StudyBatchDataModule if config["pretrain"]["study_batches"] else StridedPretrainDataModule
    return cls.from_config(config, **paths)
