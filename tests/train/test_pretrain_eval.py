"""Pure parts of pre-training: retrieval maths, disease categories, run folders, merged metrics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from cinefm.embed.retrieval import chance_at_k, recall_at_k, retrieval_table
from cinefm.embed.store import EmbeddingError, EmbeddingSet, read_embeddings, write_embeddings
from cinefm.embed.umap_plot import disease_categories
from cinefm.train.pretrain import validation_recall
from cinefm.train.runs import (
    config_differences,
    config_fingerprint,
    merge_metrics,
    publish,
    rank_log_file,
    resolve_precision,
)

from .pretrain_cohort import toy_config


def test_recall_at_k_counts_a_hit_when_any_positive_is_in_the_top_k():
    sim = np.array([[0.9, 0.5, 0.1],    # positive (col 0) ranked 1st
                    [0.9, 0.5, 0.1],    # positive (col 2) ranked 3rd
                    [0.2, 0.8, 0.9]])   # positives cols 0 and 1: col 1 ranked 2nd
    pos = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0]], dtype=bool)
    assert recall_at_k(sim, pos, [1, 2, 3, 10]) == {1: 1 / 3, 2: 2 / 3, 3: 1.0, 10: 1.0}


def test_chance_equals_exhaustive_enumeration_of_rankings():
    n, m, k = 6, 2, 3
    hits = [any(c < m for c in top[:k]) for top in itertools.permutations(range(n))]
    assert chance_at_k(n, np.array([m]), k) == pytest.approx(np.mean(hits))
    assert chance_at_k(10, np.ones(4, int), 5) == pytest.approx(0.5)  # k/N with one positive
    assert chance_at_k(3, np.array([1]), 10) == 1.0


def _emb(video, text, studies, clip_study) -> EmbeddingSet:
    return EmbeddingSet(np.asarray(video, np.float32), np.asarray(clip_study, object),
                        np.asarray([f"P{s}" for s in clip_study], object), np.asarray(["4CH"] * len(clip_study), object),
                        np.arange(len(clip_study)), np.asarray(text, np.float32), np.asarray(studies, object),
                        np.asarray([f"P{s}" for s in studies], object))


def test_aligned_embeddings_retrieve_perfectly_and_shuffled_ones_do_not():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(20, 16))
    clip_study = np.repeat([f"S{i:02d}" for i in range(20)], 3)
    video = np.repeat(text, 3, axis=0) + 0.01 * rng.normal(size=(60, 16))
    studies = [f"S{i:02d}" for i in range(20)]
    table = retrieval_table(_emb(video, text, studies, clip_study), ks=[1, 5])
    assert (table["recall"] == 1.0).all()
    study = table[table["level"] == "study"]
    assert study["chance"].tolist() == pytest.approx([0.05, 0.25, 0.05, 0.25])
    # text→clip: 3 positives among 60 clips → chance of a hit in the top 1 is 3/60
    row = table[(table["level"] == "clip") & (table["direction"] == "text_to_video") & (table["k"] == 1)]
    assert row["chance"].item() == pytest.approx(3 / 60)
    shuffled = retrieval_table(_emb(video, text[rng.permutation(20)], studies, clip_study), ks=[1])
    assert shuffled["recall"].max() < 0.5


def test_embeddings_round_trip_through_hdf5_and_reject_clips_without_report(tmp_path):
    emb = _emb(np.eye(4, 3), np.eye(2, 3), ["S0", "S1"], ["S0", "S0", "S1", "S1"])
    back = read_embeddings(write_embeddings(emb, tmp_path / "e.h5"))
    np.testing.assert_array_equal(back.clip_video, emb.clip_video)
    assert list(back.report_study) == ["S0", "S1"] and list(back.clip_patient) == ["PS0", "PS0", "PS1", "PS1"]
    with pytest.raises(EmbeddingError, match="no report embedding"):
        _emb(np.eye(4, 3), np.eye(1, 3), ["S0"], ["S0", "S0", "S1", "S1"])


def test_validation_recall_averages_the_clips_of_each_study():
    # two studies, two clips each; each study's clips point at its own text
    video = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0], [0.1, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    codes = torch.tensor([7, 7, 3, 3])
    out = validation_recall(video, text, codes, [1])
    assert out == {"val/recall@1_v2t": 1.0, "val/recall@1_t2v": 1.0, "val/chance@1": 0.5}
    assert validation_recall(video, text, torch.tensor([1, 1, 1, 1]), [1]) == {}


def test_disease_category_per_study():
    labels = pd.DataFrame({"study_id": ["a", "b", "c", "d", "e"], "hcm": [1, 1, 0, 0, None],
                           "dcm": [0, 1, 0, None, 0]})
    assert disease_categories(["a", "b", "c", "d", "e", "z"], labels, ["hcm", "dcm"]) == [
        "hcm", "multiple", "none", "uncertain", "uncertain", "unlabelled"]


def test_precision_is_kept_on_gpu_and_fp32_on_cpu():
    assert resolve_precision("bf16-mixed", "gpu") == "bf16-mixed"
    assert resolve_precision("bf16-mixed", "cpu") == "32-true"
    assert resolve_precision(32, "cpu") == "32-true"


def test_fingerprint_ignores_resumable_keys_and_file_locations():
    a = toy_config()
    b = toy_config(epochs=50, num_workers=4, precision="bf16-mixed", devices_per_node=4)
    b["models"]["video"]["weights"] = "/elsewhere/mvit.pth"
    assert config_differences(config_fingerprint(a), config_fingerprint(b)) == []
    c = toy_config(batch_size=8)
    assert config_differences(config_fingerprint(a), config_fingerprint(c)) == ["config.pretrain.batch_size: 4 -> 8"]


def test_merge_metrics_drops_rows_of_an_epoch_cut_short_by_a_kill():
    first = pd.DataFrame({"epoch": [0, 0, 1, 1, 2], "step": [0, 1, 2, 3, 4], "loss": [5.0, 4, 3, 2, 99]})
    empty = pd.DataFrame(columns=["epoch", "step", "loss"])  # an attempt killed before logging
    second = pd.DataFrame({"epoch": [2, 2, 3], "step": [4, 5, 6], "loss": [1.0, 0.9, 0.8], "val": [None, 0.5, None]})
    merged = merge_metrics([first, empty, second])
    assert merged["step"].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert 99 not in merged["loss"].tolist() and list(merged.columns) == ["epoch", "step", "loss", "val"]


def test_publish_links_a_snapshot_that_a_later_replacement_does_not_change(tmp_path):
    src, dst = tmp_path / "state.ckpt", tmp_path / "out" / "last.ckpt"
    src.write_bytes(b"epoch 1")
    publish(src, dst)
    (tmp_path / "new").write_bytes(b"epoch 2")
    (tmp_path / "new").replace(src)  # the next epoch's atomic checkpoint write
    assert dst.read_bytes() == b"epoch 1"


def test_each_ddp_rank_logs_to_its_own_file():
    assert rank_log_file("logs/p.log", {}) == "logs/p.log"
    assert rank_log_file("logs/p.log", {"LOCAL_RANK": "0"}) == "logs/p.log"
    assert rank_log_file("logs/p.log", {"LOCAL_RANK": "3"}) == "logs/p.log.rank3"
    assert math.isclose(chance_at_k(4, np.array([4]), 1), 1.0)


def test_retrieval_p_value_is_smallest_for_aligned_embeddings_and_about_uniform_for_random_ones():
    rng = np.random.default_rng(1)
    studies = [f"S{i:02d}" for i in range(20)]
    clip_study = np.repeat(studies, 3)
    text = rng.normal(size=(20, 16))
    aligned = np.repeat(text, 3, axis=0) + 0.01 * rng.normal(size=(60, 16))
    table = retrieval_table(_emb(aligned, text, studies, clip_study), ks=[1, 5], permutations=199, seed=3)
    assert (table["permutations"] == 199).all()
    assert table["p_value"].tolist() == pytest.approx([1 / 200] * len(table))  # no relabelling does as well
    # unrelated embeddings: p-values spread over (0, 1], not piled up near 0
    p_values = []
    for seed in range(12):
        r = np.random.default_rng(100 + seed)
        t = retrieval_table(_emb(r.normal(size=(60, 16)), r.normal(size=(20, 16)), studies, clip_study),
                            ks=[5], permutations=99, seed=seed)
        p_values += t.loc[t["level"] == "study", "p_value"].tolist()
    assert np.median(p_values) > 0.2 and min(p_values) > 0.01
    # same seed, same table; no permutations, no p-value
    again = retrieval_table(_emb(aligned, text, studies, clip_study), ks=[1, 5], permutations=199, seed=3)
    pd.testing.assert_frame_equal(table, again)
    assert retrieval_table(_emb(aligned, text, studies, clip_study), ks=[1], permutations=0)["p_value"].isna().all()
