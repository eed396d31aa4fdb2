"""Contrastive pre-training end to end on a tiny real cohort: train, checkpoint, resume, embed, evaluate."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Dataset

from cinefm.config import REPO_ROOT
from cinefm.data.collate import ClipCollate
from cinefm.embed.retrieval import COLUMNS, write_retrieval
from cinefm.embed.store import read_embeddings
from cinefm.embed.umap_plot import write_umap
from cinefm.models.heads import build_study_model, load_pretrained_video
from cinefm.train.pretrain import PretrainModule, run_pretraining
from cinefm.train.runs import RunPaths, read_checkpoint_meta

from .pretrain_cohort import TINY_MODELS, build_cohort, toy_config, write_config

STEPS_PER_EPOCH = 6  # 8 training studies x 3 clips / batch 4


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _train(cohort, out: Path, callbacks=(), **pretrain):
    return run_pretraining(toy_config(**pretrain), splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                           reports=cohort.reports, tokenizer=cohort.tokenizer, out_dir=out, requested_gpus=0,
                           threads=1, callbacks=callbacks)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    return build_cohort(tmp_path_factory.mktemp("pretrain_cohort"))


@pytest.fixture(scope="session")
def trained(cohort, tmp_path_factory):
    """A finished 2-epoch run (read-only for tests: copy it before continuing it)."""
    out = tmp_path_factory.mktemp("pretrain_run") / "toy"
    result = _train(cohort, out)
    return out, result


def _copy_run(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "toy"
    shutil.copytree(src, dst)
    return dst


def _epoch_rows(metrics: pd.DataFrame, column: str) -> pd.Series:
    return metrics.dropna(subset=[column]).groupby("epoch").size()


# ---------------------------------------------------------------- the module alone
class PairDataset(Dataset):
    """4 fixed (clip, report) pairs: clip i is noise pattern i, report i is token i repeated."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.video = torch.randn(4, 3, 4, 16, 16, generator=gen)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        return {"video": self.video[i], "input_ids": torch.tensor([2, 10 + i, 10 + i, 3]), "study_id": f"S{i}",
                "view": "4CH", "slice": 0}


class LossRecorder(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _fit_pairs(steps: int, seed: int = 0) -> list[float]:
    L.seed_everything(seed, verbose=False)
    pre = toy_config(lr=3e-3, flood_level=0.0)["pretrain"]
    module = PretrainModule(TINY_MODELS, pre, vocab_size=32)
    recorder = LossRecorder()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder])
    loader = DataLoader(PairDataset(), batch_size=4, collate_fn=ClipCollate(0))
    trainer.fit(module, train_dataloaders=loader)
    return recorder.losses


def test_loss_decreases_on_a_learnable_toy_pairing_and_the_seed_fixes_it():
    losses = _fit_pairs(40)
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5]), losses
    assert _fit_pairs(3) == losses[:3]  # same seed, same steps


def test_frozen_bert_layers_get_no_optimizer_slot():
    module = PretrainModule(TINY_MODELS, toy_config()["pretrain"], vocab_size=32)
    optim = module.configure_optimizers()["optimizer"]
    in_optim = {id(p) for g in optim.param_groups for p in g["params"]}
    frozen = [p for p in module.model.text.bert.encoder.layer[0].parameters()]
    assert frozen and not any(id(p) in in_optim for p in frozen)
    assert all(id(p) in in_optim for p in module.model.video.parameters())
    assert optim.defaults["eps"] == 1e-8 and optim.defaults["weight_decay"] == 1e-6


def test_study_batches_draw_each_training_batch_from_distinct_studies(cohort):
    from cinefm.train.sampling import StudyBatchDataModule, pretrain_datamodule

    paths = dict(splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv, reports=cohort.reports,
                 tokenizer=cohort.tokenizer)
    dm = pretrain_datamodule(toy_config(study_batches=True), **paths)
    assert isinstance(dm, StudyBatchDataModule)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == STEPS_PER_EPOCH
    for batch in batches:
        assert len(set(batch["study_id"])) == len(batch["study_id"]) == 4
        assert batch["video"].shape[0] == 4 and batch["input_ids"].shape[0] == 4
    assert type(pretrain_datamodule(toy_config(), **paths)) is not StudyBatchDataModule


def test_study_batches_are_refused_under_ddp(cohort, tmp_path):
    from cinefm.config import ConfigError

    with pytest.raises(ConfigError, match="pretrain.study_batches: true trains in one process, but this job runs 2"):
        run_pretraining(toy_config(study_batches=True), splits_csv=cohort.splits_csv,
                        studies_csv=cohort.studies_csv, reports=cohort.reports, tokenizer=cohort.tokenizer,
                        out_dir=tmp_path / "toy", layout={"accelerator": "cpu", "devices": 2, "strategy": "ddp"})


# ------------------------------------------------------------------ end to end
def test_checkpoint_holds_model_video_keys_that_finetuning_loads(trained):
    out, result = trained
    assert result.last_ckpt == out / "last.ckpt" and result.epochs == 2
    state = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert any(k.startswith("model.video.") for k in state) and "model.video_proj.weight" in state
    study = build_study_model(TINY_MODELS["video"], projection_dim=8, n_outputs=1, mil_hidden=4)
    assert load_pretrained_video(study, out / "last.ckpt") > 2
    torch.testing.assert_close(study.video_proj.weight, state["model.video_proj.weight"])


def test_metrics_csv_has_each_epoch_once_with_train_and_validation_metrics(trained):
    out, _ = trained
    metrics = pd.read_csv(out / "metrics.csv")
    assert _epoch_rows(metrics, "train/loss_epoch").to_dict() == {0: 1, 1: 1}
    assert _epoch_rows(metrics, "train/loss_step").to_dict() == {0: STEPS_PER_EPOCH, 1: STEPS_PER_EPOCH}
    val = metrics.dropna(subset=["val/loss"])
    assert list(val["epoch"]) == [0, 1]
    for col in ("val/recall@1_v2t", "val/recall@1_t2v"):
        assert val[col].between(0, 1).all()
    assert (val["val/chance@1"] == 0.25).all()  # 4 validation studies
    assert (out / "state" / "checkpoints" / "epoch0000.ckpt").is_file()  # checkpoint_every: 1


def test_embeddings_cover_every_validation_clip_and_report(trained, cohort):
    out, _ = trained
    emb = read_embeddings(out / "embeddings.h5")
    assert len(emb.clip_video) == cohort.val_clips and emb.dim == 8
    assert tuple(emb.report_study) == cohort.val_studies
    assert sorted(set(emb.clip_study)) == list(cohort.val_studies)
    assert list(emb.clip_patient[:3]) == ["P08"] * 3
    np.testing.assert_allclose(np.linalg.norm(emb.clip_video, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb.report_text, axis=1), 1, atol=1e-5)
    with h5py.File(out / "embeddings.h5") as fh:
        assert fh.attrs["run"] == "toy" and fh.attrs["epoch"] == 2


def test_retrieval_csv_has_recall_and_chance_in_the_unit_interval(trained, tmp_path):
    out, _ = trained
    table = write_retrieval(out / "embeddings.h5", tmp_path / "retrieval.csv", ks=[1, 5])
    back = pd.read_csv(tmp_path / "retrieval.csv")
    assert list(back.columns) == COLUMNS and len(back) == len(table) == 8
    assert back["recall"].between(0, 1).all() and back["chance"].between(0, 1).all()
    study = back[back["level"] == "study"].set_index(["direction", "k"])
    assert study.loc[("video_to_text", 1), "chance"] == pytest.approx(0.25)
    assert study.loc[("video_to_text", 5), "recall"] == 1.0  # k >= N studies
    clip_t2v = back[(back["level"] == "clip") & (back["direction"] == "text_to_video")]
    assert clip_t2v["n_candidates"].iloc[0] == 12


def test_umap_png_is_written_for_the_validation_embeddings(trained, cohort, tmp_path):
    out, _ = trained
    write_umap(out / "embeddings.h5", cohort.labels_csv, tmp_path / "umap.png", ["hcm", "dcm"], n_neighbors=15)
    data = (tmp_path / "umap.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_rerun_of_a_finished_run_trains_nothing_and_publishes_again(trained, cohort, tmp_path):
    out = _copy_run(trained[0], tmp_path)
    before = read_checkpoint_meta(out / "state" / "last.ckpt")
    (out / "last.ckpt").unlink()  # Snakemake removes a rerun job's outputs first
    (out / "metrics.csv").unlink()
    start = time.perf_counter()
    result = _train(cohort, out)
    assert result.resumed_from == out / "state" / "last.ckpt"
    assert read_checkpoint_meta(out / "last.ckpt")["global_step"] == before["global_step"] == 2 * STEPS_PER_EPOCH
    assert pd.read_csv(out / "metrics.csv").equals(pd.read_csv(trained[0] / "metrics.csv"))
    assert time.perf_counter() - start < 30


class CrashAt(Callback):
    """Raise in the middle of an epoch, as a preemption would stop the job."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise RuntimeError("simulated preemption")


def test_run_killed_mid_epoch_resumes_and_ends_at_the_configured_epoch(trained, cohort, tmp_path):
    out = _copy_run(trained[0], tmp_path)
    with pytest.raises(RuntimeError, match="simulated preemption"):
        _train(cohort, out, callbacks=[CrashAt(epoch=2, batch=2)], epochs=4)
    assert read_checkpoint_meta(RunPaths(out).resume)["epoch"] == 1  # epoch 2 never finished
    result = _train(cohort, out, epochs=4)
    assert result.epochs == 4 and result.resumed_from == RunPaths(out).resume
    meta = read_checkpoint_meta(out / "last.ckpt")
    assert meta["epoch"] == 3 and meta["global_step"] == 4 * STEPS_PER_EPOCH
    metrics = pd.read_csv(out / "metrics.csv")
    # the killed attempt's 3 step rows of epoch 2 are replaced by the resumed attempt's full epoch
    assert _epoch_rows(metrics, "train/loss_step").to_dict() == dict.fromkeys(range(4), STEPS_PER_EPOCH)
    assert _epoch_rows(metrics, "train/loss_epoch").to_dict() == dict.fromkeys(range(4), 1)
    assert (out / "state" / "checkpoints" / "epoch0003.ckpt").is_file()


def test_a_changed_configuration_starts_over_and_keeps_the_old_state_aside(trained, cohort, tmp_path, caplog):
    out = _copy_run(trained[0], tmp_path)
    old = read_checkpoint_meta(RunPaths(out).resume)
    result = _train(cohort, out, temperature=0.2)
    assert result.resumed_from is None
    assert "config.pretrain.temperature: 0.1 -> 0.2" in caplog.text
    kept = out / "state.superseded.1" / "last.ckpt"
    assert read_checkpoint_meta(kept)["global_step"] == old["global_step"]
    new = read_checkpoint_meta(out / "last.ckpt")
    assert new["hyper_parameters"]["fingerprint"]["pretrain"]["temperature"] == 0.2


@pytest.mark.slow
def test_two_cpu_ddp_processes_train_and_embed_through_the_cli(cohort, tmp_path):
    cfg = toy_config(epochs=1, gather_negatives=True)
    config = write_config(cfg, tmp_path / "config.yaml")
    out = tmp_path / "ddp"
    cli = Path(sys.executable).with_name("cinefm")
    proc = subprocess.run([str(cli), "--log", str(tmp_path / "ddp.log"), "pretrain", "--config", str(config),
                           "--results", str(cohort.results), "--out", str(out), "--cpu-processes", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    meta = read_checkpoint_meta(out / "last.ckpt")
    assert meta["epoch"] == 0 and meta["global_step"] == STEPS_PER_EPOCH // 2  # each rank: half the batches
    emb = read_embeddings(out / "embeddings.h5")
    assert len(emb.clip_video) == cohort.val_clips and len(emb.report_text) == len(cohort.val_studies)
    assert not (out / "state" / "embed").exists()


def test_train_step_benchmark_prints_ours_against_the_references_on_cpu(capsys):
    spec = importlib.util.spec_from_file_location("train_step", REPO_ROOT / "benchmarks" / "train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--shape", "tiny", "--steps", "2", "--warmup", "1", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 4 and rows[1].startswith("| ours")
    rates = [float(r.split("|")[3]) for r in rows[1:]]
    ratios = [float(r.split("|")[4]) for r in rows[1:]]
    assert all(r > 0 for r in rates) and ratios[0] == 1.0
    assert ratios[1] == pytest.approx(rates[0] / rates[1], rel=0.02)
