"""DDP book-keeping of pre-training: learning rate and batch per world size, rank-strided batches,
rank log files and the srun launcher (its SLURM runs: tests/workflow/test_multinode.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cinefm.cluster import training_request
from cinefm.config import ConfigError
from cinefm.data.seeding import RankStridedSampler, SeededSampler, rank_strided
from cinefm.train.launch import launch, srun_command, write_spec
from cinefm.train.pretrain import effective_lr, world_layout
from cinefm.train.runs import rank_log_file

PAPER = {"lr": 4.8e-5, "batch_size": 32, "lr_reference_batch": 128}


def test_learning_rate_is_the_stated_one_on_any_number_of_gpus_by_default():
    assert effective_lr(PAPER, 4) == effective_lr(PAPER, 8) == effective_lr(PAPER, 1) == 4.8e-5


def test_linear_and_sqrt_scaling_follow_the_global_batch():
    assert effective_lr({**PAPER, "lr_scaling": "linear"}, 4) == pytest.approx(4.8e-5)
    assert effective_lr({**PAPER, "lr_scaling": "linear"}, 8) == pytest.approx(9.6e-5)
    assert effective_lr({**PAPER, "lr_scaling": "sqrt"}, 8) == pytest.approx(4.8e-5 * math.sqrt(2))
    with pytest.raises(ConfigError, match="lr_scaling"):
        effective_lr({**PAPER, "lr_scaling": "cubic"}, 8)


def test_world_layout_states_global_batch_and_negatives_with_and_without_gathering():
    per_gpu = world_layout(PAPER, 8, num_nodes=2, devices=4)
    assert (per_gpu.global_batch, per_gpu.negatives_per_clip, per_gpu.gather_negatives) == (256, 31, False)
    gathered = world_layout({**PAPER, "gather_negatives": True}, 8, num_nodes=2, devices=4)
    assert (gathered.global_batch, gathered.negatives_per_clip) == (256, 255)
    assert "world size 8 (2 node(s) x 4 device(s))" in gathered.describe()
    assert "255 negatives per clip (across ranks" in gathered.describe()
    one = world_layout({**PAPER, "gather_negatives": True}, 1)
    assert (one.global_batch, one.negatives_per_clip, one.gather_negatives) == (32, 31, False)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_rank_strided_ranks_share_each_global_batch_of_the_one_process_order(world):
    inner = SeededSampler(24, seed=5)
    order = list(SeededSampler(24, seed=5))
    ranks = [list(RankStridedSampler(SeededSampler(24, seed=5), world, r)) for r in range(world)]
    batch = 2
    for step in range(len(ranks[0]) // batch):
        together = {key for r in ranks for key in r[step * batch:(step + 1) * batch]}
        want = order[step * batch * world:(step + 1) * batch * world]
        assert together == set(want) and len(want) == batch * world, step
    # the epoch reaches the inner sampler: rank 0 takes every W-th key of that epoch's order
    strided = RankStridedSampler(inner, world, 0)
    strided.set_epoch(3)
    assert inner.epoch == 3
    again = SeededSampler(24, seed=5)
    again.set_epoch(3)
    assert list(strided) == list(again)[0::world]


def test_rank_strided_pads_to_equal_shares_and_leaves_one_process_alone():
    def loader():  # one per rank, as every DDP process builds its own
        return torch.utils.data.DataLoader(list(range(10)), batch_size=2, sampler=SeededSampler(10, seed=0))

    one = loader()
    assert rank_strided(one, 1, 0) is one
    shares = [list(rank_strided(loader(), 4, r).sampler) for r in range(4)]
    assert {len(s) for s in shares} == {3}  # 10 keys padded to 12
    assert {k for s in shares for k in s} == set(SeededSampler(10, seed=0))


def test_each_rank_gets_its_own_log_file():
    assert rank_log_file("logs/p.log", {}) == "logs/p.log"
    assert rank_log_file("logs/p.log", {"LOCAL_RANK": "2"}) == "logs/p.log.rank2"  # Lightning-spawned
    srun = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}
    assert rank_log_file("logs/p.log", srun) == "logs/p.log.rank5"  # global rank, not the local one
    assert rank_log_file("logs/p.log", {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "LOCAL_RANK": "1"}) == (
        "logs/p.log.rank1")


def test_srun_line_starts_one_task_per_device_on_every_node(tmp_path):
    req = training_request({"nodes": 2, "devices_per_node": 4, "threads": 32})
    cmd = srun_command(req, tmp_path / "launch.json", python="py")
    assert cmd == ["srun", "--nodes=2", "--ntasks-per-node=4", "--cpus-per-task=8", "--kill-on-bad-exit=1",
                   "--label", "py", "-m", "cinefm.train.launch", str(tmp_path / "launch.json")]
    spec = json.loads(write_spec(tmp_path / "launch.json", "pretrain", {"out_dir": tmp_path}, "x.log", req)
                      .read_text())
    assert spec == {"kind": "pretrain", "kwargs": {"out_dir": str(tmp_path)}, "log": "x.log",
                    "request": {"nodes": 2, "devices_per_node": 4, "cpus_per_device": 8, "launch": "srun"}}


def test_srun_launch_outside_an_allocation_says_how_to_train_here(tmp_path):
    req = training_request({"nodes": 2, "devices_per_node": 2, "threads": 2})
    with pytest.raises(ConfigError, match=r"needs a SLURM allocation.*pretrain.nodes: 1"):
        launch("pretrain", {}, req, spec_dir=tmp_path, env={})
    assert not (tmp_path / "launch.json").exists()
