"""Embed every validation clip and report with a trained pre-training module (``Trainer.predict``).

Clips: the validation :class:`~cinefm.data.datasets.ClipDataset` without augmentation
(temporal phase 0). Reports: one embedding per study over its *whole* report — the
sentences are cut into consecutive groups of ``sentences_per_step`` (the length the
text tower saw in training), each group joined as ``[CLS] s_i … s_{i+k−1} [SEP]``
(:func:`cinefm.data.text.compose_text`), and the group embeddings averaged
(:func:`cinefm.models.clip.pool_sentences`) before the projection.

Under DDP every rank embeds its share (Lightning's distributed sampler, which may
repeat a few items to even out the ranks); :class:`EmbeddingWriter` saves one shard per
rank, and rank 0 merges them, dropping repeats, into ``embeddings.h5``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from cinefm.data.collate import ClipCollate
from cinefm.data.text import ReportSource, SpecialTokens, compose_text
from cinefm.embed.store import EmbeddingSet, write_embeddings
from cinefm.models.text import pad_sentences

log = logging.getLogger(__name__)


class ReportChunkDataset(Dataset):
    """One item per study: its report as groups of ``k`` consecutive sentences, each a token list.

    ``studies``: frame with ``study_id``, ``patient_id`` (one row per study). Item:
    ``{"chunks": [[CLS, ..., SEP], ...], "study_id", "patient_id"}``.
    """

    def __init__(self, studies: pd.DataFrame, reports: ReportSource, special: SpecialTokens, *,
                 sentences: int, max_tokens: int) -> None:
        if sentences < 1:
            raise ValueError(f"sentences per chunk must be >= 1, got {sentences}")
        self.studies = studies[["study_id", "patient_id"]].drop_duplicates("study_id").reset_index(drop=True)
        self.reports, self.special = reports, special
        self.sentences, self.max_tokens = sentences, max_tokens

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> dict:
        row = self.studies.iloc[index]
        ids = [s for s in self.reports.sentence_ids(row["study_id"]) if len(s)]
        groups = [ids[i:i + self.sentences] for i in range(0, len(ids), self.sentences)] or [[]]
        rng = np.random.default_rng(0)  # k = group size: compose_text keeps every sentence, in order
        chunks = [compose_text(g, len(g), rng, self.max_tokens, self.special).tolist() for g in groups]
        return {"chunks": chunks, "study_id": row["study_id"], "patient_id": row["patient_id"]}


class ReportChunkCollate:
    """Batch :class:`ReportChunkDataset` items as ``input_ids``/``attention_mask`` ``[B, S, L]``."""

    def __init__(self, pad_id: int, max_tokens: int) -> None:
        self.pad_id, self.max_tokens = int(pad_id), int(max_tokens)

    def __call__(self, items: list[dict]) -> dict:
        ids, mask = pad_sentences([it["chunks"] for it in items], self.max_tokens, self.pad_id)
        return {"input_ids": ids, "attention_mask": mask, "study_id": [it["study_id"] for it in items],
                "patient_id": [it["patient_id"] for it in items]}


class EmbeddingWriter(BasePredictionWriter):
    """Collect ``predict_step`` outputs of this rank and save them to ``<shard_dir>/rank<N>.pt``."""

    def __init__(self, shard_dir: str | os.PathLike) -> None:
        super().__init__(write_interval="batch")
        self.shard_dir = Path(shard_dir)
        self._parts: list[dict] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._parts = []

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        self._parts.append(prediction)

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        torch.save(self._parts, self.shard_dir / f"rank{trainer.global_rank}.pt")
        self._parts = []


def merge_shards(parts: list[dict], study_patient: Mapping[str, str], attrs: Mapping[str, Any]) -> EmbeddingSet:
    """One :class:`EmbeddingSet` from predict outputs of all ranks; repeated clips/studies kept once."""
    clips = [p for p in parts if p["kind"] == "clips"]
    reps = [p for p in parts if p["kind"] == "reports"]
    clip_df = pd.DataFrame({
        "study_id": [s for p in clips for s in p["study_id"]],
        "view": [v for p in clips for v in p["view"]],
        "slice": np.concatenate([p["slice"].numpy() for p in clips]) if clips else np.zeros(0, np.int64),
    })
    clip_emb = torch.cat([p["emb"] for p in clips]).numpy() if clips else np.zeros((0, 0), np.float32)
    keep = ~clip_df.duplicated(["study_id", "view", "slice"]).to_numpy()
    clip_df, clip_emb = clip_df[keep].reset_index(drop=True), clip_emb[keep]
    rep_df = pd.DataFrame({"study_id": [s for p in reps for s in p["study_id"]],
                           "patient_id": [s for p in reps for s in p["patient_id"]]})
    rep_emb = torch.cat([p["emb"] for p in reps]).numpy() if reps else np.zeros((0, 0), np.float32)
    keep = ~rep_df.duplicated("study_id").to_numpy()
    rep_df, rep_emb = rep_df[keep].reset_index(drop=True), rep_emb[keep]
    # study order for reports, stable clip order within a study
    rep_order = np.argsort(rep_df["study_id"].to_numpy(), kind="stable")
    clip_order = np.argsort(clip_df["study_id"].to_numpy(), kind="stable")
    clip_df, clip_emb = clip_df.iloc[clip_order].reset_index(drop=True), clip_emb[clip_order]
    rep_df, rep_emb = rep_df.iloc[rep_order].reset_index(drop=True), rep_emb[rep_order]
    return EmbeddingSet(
        clip_video=clip_emb, clip_study=clip_df["study_id"].to_numpy(dtype=object),
        clip_patient=np.asarray([study_patient[s] for s in clip_df["study_id"]], dtype=object),
        clip_view=clip_df["view"].to_numpy(dtype=object), clip_slice=clip_df["slice"].to_numpy(np.int64),
        report_text=rep_emb, report_study=rep_df["study_id"].to_numpy(dtype=object),
        report_patient=rep_df["patient_id"].to_numpy(dtype=object), attrs=dict(attrs),
    )


def validation_loaders(datamodule, *, batch_size: int, num_workers: int = 0) -> tuple[list[DataLoader], dict]:
    """Clip and report loaders over the validation split of a set-up PretrainDataModule.

    Returns the loaders and the ``study_id -> patient_id`` map of the split.
    """
    datamodule.setup("predict")
    val = datamodule.datasets["val"]
    studies = val.series[["study_id", "patient_id"]].drop_duplicates("study_id")
    reports = ReportChunkDataset(studies, datamodule.reports, datamodule.special,
                                 sentences=datamodule.sentences, max_tokens=datamodule.text_max_tokens)
    common = {"batch_size": batch_size, "shuffle": False, "num_workers": num_workers,
              "persistent_workers": False}
    loaders = [DataLoader(val, collate_fn=ClipCollate(datamodule.special.pad), **common),
               DataLoader(reports, collate_fn=ReportChunkCollate(datamodule.special.pad,
                                                                 datamodule.text_max_tokens), **common)]
    return loaders, dict(zip(studies["study_id"], studies["patient_id"], strict=True))


def embed_validation(trainer: L.Trainer, module: L.LightningModule, datamodule, out_h5: str | os.PathLike, *,
                     shard_dir: str | os.PathLike, attrs: Mapping[str, Any] | None = None) -> Path | None:
    """Run ``trainer.predict`` over the validation clips and reports; rank 0 writes ``out_h5``.

    ``trainer`` must carry no other prediction writer; an :class:`EmbeddingWriter` for
    ``shard_dir`` is added for the call. Returns ``out_h5`` on rank 0, None elsewhere.
    """
    loaders, study_patient = validation_loaders(datamodule, batch_size=datamodule.batch_size,
                                                num_workers=datamodule.num_workers)
    if len(loaders[0].dataset) == 0 or len(loaders[1].dataset) == 0:
        raise ValueError("the pre-training validation split has no clip with a report: nothing to embed; "
                         "check config.splits.pretrain_val_fraction and the reports")
    shard_dir = Path(shard_dir)
    if trainer.is_global_zero:  # shards of an earlier attempt (maybe another world size) are stale
        shutil.rmtree(shard_dir, ignore_errors=True)
    writer = EmbeddingWriter(shard_dir)
    trainer.callbacks.append(writer)
    try:
        trainer.predict(module, dataloaders=loaders, return_predictions=False)
    finally:
        trainer.callbacks.remove(writer)
    trainer.strategy.barrier("embeddings written")
    if not trainer.is_global_zero:
        return None
    parts = [p for f in sorted(shard_dir.glob("rank*.pt")) for p in torch.load(f, weights_only=False)]
    emb = merge_shards(parts, study_patient, {**(attrs or {}), "split": "pretrain/val"})
    write_embeddings(emb, out_h5)
    shutil.rmtree(shard_dir, ignore_errors=True)
    log.info("embedded %d validation clips and %d reports -> %s", len(emb.clip_video), len(emb.report_text), out_h5)
    return Path(out_h5)
