"""The disease-structure number of the validation embeddings and study-distinct training batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinefm.config import ConfigError
from cinefm.embed.store import EmbeddingSet, write_embeddings
from cinefm.embed.structure import COLUMNS, auroc, structure_table, write_structure
from cinefm.train.sampling import StudyBatchSampler


def _clustered(n_per_class: int = 12, dim: int = 16, separation: float = 3.0, seed: int = 0):
    """Studies of two classes (hcm 1/0) around two centres; 2 clips per study; one study per patient."""
    rng = np.random.default_rng(seed)
    y = np.repeat([1, 0], n_per_class)
    centres = rng.normal(size=(2, dim)) * separation
    study_x = centres[1 - y] + rng.normal(size=(len(y), dim))
    studies = np.array([f"S{i:02d}" for i in range(len(y))], object)
    clips = np.repeat(study_x, 2, axis=0) + 0.1 * rng.normal(size=(2 * len(y), dim))
    clip_study = np.repeat(studies, 2)
    emb = EmbeddingSet(clips.astype(np.float32), clip_study, np.array([f"P{s}" for s in clip_study], object),
                       np.array(["4CH", "SAX"] * len(y), object), np.zeros(len(clip_study), np.int64),
                       rng.normal(size=(len(y), dim)).astype(np.float32), studies,
                       np.array([f"P{s}" for s in studies], object))
    labels = pd.DataFrame({"study_id": studies, "hcm": y, "dcm": 1 - y})
    return emb, labels


def test_auroc_matches_pair_counting_with_ties_as_half():
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.5, 0.5, 0.1, 0.2])
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y == 1] for b in s[y == 0]]
    assert auroc(y, s) == pytest.approx(np.mean(pairs))


def test_clustered_video_embeddings_score_high_and_the_shuffled_labels_do_not():
    emb, labels = _clustered()
    table = structure_table(emb, labels, ["hcm", "dcm"], k=5, permutations=200, seed=0)
    assert list(table.columns) == COLUMNS
    video = table[table["embedding"] == "video"].set_index("target")
    assert set(video.index) == {"hcm", "dcm", "mean"}
    assert video.loc["hcm", "auroc"] == pytest.approx(1.0)
    assert video.loc["hcm", "null_mean"] < 0.55           # permuted labels: no structure
    assert video.loc["mean", "p_value"] == pytest.approx(1 / 201)
    assert video.loc["hcm", "n_studies"] == 24 and video.loc["hcm", "positives"] == 12
    text = table[table["embedding"] == "text"].set_index("target")  # random report embeddings
    assert abs(text.loc["hcm", "auroc"] - text.loc["hcm", "null_mean"]) < 3 * text.loc["hcm", "null_sd"] + 0.05
    assert text.loc["hcm", "p_value"] > 0.01


def test_repeat_studies_of_a_patient_do_not_vote_for_each_other():
    """Pairs of identical studies (one patient each) with random labels per pair: no real structure."""
    rng = np.random.default_rng(1)
    n_pairs, dim = 10, 8
    x = np.repeat(rng.normal(size=(n_pairs, dim)), 2, axis=0)
    studies = np.array([f"S{i:02d}" for i in range(2 * n_pairs)], object)
    patients = np.repeat([f"P{i}" for i in range(n_pairs)], 2).astype(object)
    y = np.repeat(np.arange(n_pairs) % 2, 2)
    emb = EmbeddingSet(x.astype(np.float32), studies, patients, np.array(["4CH"] * len(x), object),
                       np.zeros(len(x), np.int64), x.astype(np.float32), studies, patients)
    labels = pd.DataFrame({"study_id": studies, "hcm": y})
    row = structure_table(emb, labels, ["hcm"], k=1, permutations=50, seed=0).iloc[0]
    assert row["auroc"] < 0.9     # the twin (same label) would give 1.0 if it could be a neighbour


def test_unknown_labels_are_left_out_and_unscorable_targets_skipped(tmp_path):
    emb, labels = _clustered(n_per_class=6)
    labels["hcm"] = labels["hcm"].astype(float)
    labels.loc[[0, 7], "hcm"] = np.nan                 # uncertain
    labels["amyloidosis"] = [1] + [0] * (len(labels) - 1)   # one positive patient only
    write_embeddings(emb, tmp_path / "embeddings.h5")
    labels.to_csv(tmp_path / "labels.csv", index=False)
    table = write_structure(tmp_path / "embeddings.h5", tmp_path / "labels.csv", tmp_path / "structure.csv",
                            ["hcm", "amyloidosis", "heart_failure"], k=3, permutations=20)
    assert set(table["target"]) == {"hcm", "mean"}
    assert table.set_index(["embedding", "target"]).loc[("video", "hcm"), "n_studies"] == 10
    assert pd.read_csv(tmp_path / "structure.csv").shape == table.shape
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['rv_dilation'\]"):
        structure_table(emb, labels, ["rv_dilation"])


def test_study_batches_hold_distinct_studies_and_use_every_clip_once_per_epoch():
    studies = [f"S{i}" for i in range(10) for _ in range(3 + i % 4)]   # 3..6 clips per study, 45 clips
    sampler = StudyBatchSampler(studies, batch_size=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(studies) // 4
    for batch in batches:
        assert len({studies[i] for i, _ in batch}) == 4
    used = [i for batch in batches for i, _ in batch]
    assert len(set(used)) >= len(used) - 4              # repeats only to fill the tail of the epoch
    assert all(isinstance(s, int) for batch in batches for _, s in batch)
    again = StudyBatchSampler(studies, batch_size=4, seed=0)
    assert list(again) == batches                       # same seed and epoch, same batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_study_batches_need_as_many_studies_as_the_batch():
    with pytest.raises(ConfigError, match="pretrain.study_batches: 3 training studies are fewer than"):
        StudyBatchSampler(["a", "b", "c", "a"], batch_size=4, seed=0)
