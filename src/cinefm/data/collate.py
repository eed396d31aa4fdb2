"""Batching: pad report tokens (pre-training) and views per study (fine-tuning).

Clip batch: ``video`` (B, C, T, H, W); ``input_ids`` (B, L) padded with the tokenizer's
``[PAD]`` id to the longest sequence; ``attention_mask`` (B, L) int64, 1 = real token.

Study batch: ``video`` (B, K, C, T, H, W) zero-padded to the study with most views;
``mask`` (B, K) bool, True = real view (the contract of
:class:`cinefm.models.mil.GatedAttentionMIL`); ``views`` B lists of K names ("" = padding);
``slices`` (B, K) int64 (-1 = padding); ``target`` (B, n_tasks) float32 (NaN = unknown).
"""

from __future__ import annotations

import torch


class ClipCollate:
    """Collate :class:`~cinefm.data.datasets.ClipDataset` items (picklable for workers)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = int(pad_id)

    def __call__(self, items: list[dict]) -> dict:
        length = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), length), dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = it["input_ids"]
            mask[i, :n] = 1
        return {
            "video": torch.stack([it["video"] for it in items]),
            "input_ids": ids,
            "attention_mask": mask,
            "study_id": [it["study_id"] for it in items],
            "view": [it["view"] for it in items],
            "slice": torch.tensor([it["slice"] for it in items], dtype=torch.long),
        }


def collate_studies(items: list[dict]) -> dict:
    """Collate :class:`~cinefm.data.datasets.StudyDataset` items with view padding and a mask."""
    k_max = max(it["video"].shape[0] for it in items)
    first = items[0]["video"]
    video = first.new_zeros((len(items), k_max, *first.shape[1:]))
    mask = torch.zeros((len(items), k_max), dtype=torch.bool)
    slices = torch.full((len(items), k_max), -1, dtype=torch.long)
    views = []
    for i, it in enumerate(items):
        k = it["video"].shape[0]
        video[i, :k] = it["video"]
        mask[i, :k] = True
        slices[i, :k] = it["slices"]
        views.append(list(it["views"]) + [""] * (k_max - k))
    return {
        "video": video,
        "mask": mask,
        "views": views,
        "slices": slices,
        "target": torch.stack([it["target"] for it in items]),
        "study_id": [it["study_id"] for it in items],
        "patient_id": [it["patient_id"] for it in items],
    }
