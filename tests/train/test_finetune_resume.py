"""A fine-tuning job killed mid-run (SIGKILL) resumes from state/last.ckpt and ends as if never killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch

from cinefm.train.finetune import run_finetune

from .finetune_cohort import build_cohort, toy_config, write_experiment

STEPS, VAL_EVERY = 30, 10

# Runs one experiment in a separate process, slowed down (sleep per batch) after the first
# validation so that the test can kill it between two checkpoints.
CHILD = """
import json, sys, time
import lightning as L
from cinefm.train.finetune import run_finetune

args = json.loads(open(sys.argv[1]).read())

class Slow(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= args["slow_after"]:
            time.sleep(0.5)

run_finetune(args["experiment"], args["config"], splits_csv=args["splits"], studies_csv=args["studies"],
             labels_csv=args["labels"], pretrain_ckpt=None, out_ckpt=args["out"] + "/best.ckpt",
             out_predictions=args["out"] + "/predictions.csv", out_metrics=args["out"] + "/metrics.csv",
             gpus=0, threads=1, callbacks=[Slow()])
"""


class Batches(L.Callback):
    """Records ``(global_step, epoch, batch_idx, study ids)`` of every training batch."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rows.append((trainer.global_step, trainer.current_epoch, batch_idx, tuple(batch["study_id"])))


class Crash(RuntimeError):
    pass


class CrashAfter(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise Crash(f"stopped at step {trainer.global_step}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_resume")
    cohort = build_cohort(root / "cohort")
    exp = write_experiment(root / "experiments", "lvef_random_transfer_100", task="lvef", init="random",
                           mode="transfer", fraction=1.0, seed=0)
    config = toy_config(finetune={"lvef": {"max_steps": STEPS, "val_every_steps": VAL_EVERY}})
    return root, cohort, exp, config


def _run(setup, out: Path, callbacks=(), config=None) -> pd.DataFrame:
    root, cohort, exp, default = setup
    return run_finetune(exp, config or default, splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                        labels_csv=cohort.labels_csv, pretrain_ckpt=None, out_ckpt=out / "best.ckpt",
                        out_predictions=out / "predictions.csv", out_metrics=out / "metrics.csv", gpus=0,
                        threads=1, callbacks=list(callbacks))


@pytest.fixture(scope="module")
def reference(setup):
    """The same experiment, never interrupted."""
    batches = Batches()
    out = setup[0] / "reference"
    predictions = _run(setup, out, [batches])
    return {"predictions": predictions, "batches": batches.rows, "metrics": pd.read_csv(out / "metrics.csv"),
            "best": torch.load(out / "best.ckpt", map_location="cpu", weights_only=False)}


def _kill_after_first_checkpoint(setup, out: Path) -> int:
    """Start the experiment in a child process, SIGKILL it once state/last.ckpt exists; return its step."""
    root, cohort, exp, config = setup
    args = {"experiment": str(exp), "config": config, "splits": str(cohort.splits_csv),
            "studies": str(cohort.studies_csv), "labels": str(cohort.labels_csv), "out": str(out),
            "slow_after": VAL_EVERY}
    (root / "child.json").write_text(json.dumps(args))
    (root / "child.py").write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(root / "child.py"), str(root / "child.json")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = out / "state" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child ended before its first checkpoint: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no state/last.ckpt after 120 s")
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the next (slowed-down) stretch of training
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return int(torch.load(last, map_location="cpu", weights_only=False)["global_step"])


def test_sigkilled_job_resumes_from_its_last_checkpoint_and_ends_like_an_uninterrupted_one(setup, reference):
    out = setup[0] / "killed"
    step = _kill_after_first_checkpoint(setup, out)
    assert step == VAL_EVERY  # the resume point is the checkpoint of the last validation
    assert not (out / "predictions.csv").exists() and not (out / "best.ckpt").exists()
    assert (out / "state" / "best.ckpt").is_file()

    batches = Batches()
    predictions = _run(setup, out, [batches])
    # training continued at the checkpoint's step (not from 0), on the batches the killed job had not seen
    assert batches.rows[0][0] == step
    assert batches.rows == [r for r in reference["batches"] if r[0] >= step]
    # the same end: step budget, validation history, selected checkpoint, predictions
    metrics = pd.read_csv(out / "metrics.csv")
    history = metrics[metrics["stage"] == "history"]
    assert sorted(history["step"].unique()) == [10, 20, 30]
    pd.testing.assert_frame_equal(metrics, reference["metrics"])
    best = torch.load(out / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["global_step"] == reference["best"]["global_step"]
    pd.testing.assert_frame_equal(predictions, reference["predictions"])
    assert not (out / "state").exists()  # a finished run leaves no resume state behind


def test_a_checkpoint_of_another_configuration_is_set_aside_and_training_starts_over(setup):
    out = setup[0] / "changed"
    with pytest.raises(Crash):
        _run(setup, out, [CrashAfter(VAL_EVERY + 1)])
    assert (out / "state" / "last.ckpt").is_file()
    changed = toy_config(finetune={"lvef": {"max_steps": VAL_EVERY, "val_every_steps": VAL_EVERY, "lr": 1.0e-3}})
    batches = Batches()
    _run(setup, out, [batches], config=changed)
    assert batches.rows[0][0] == 0
    assert (out / "state.superseded.1" / "last.ckpt").is_file()
    assert (out / "predictions.csv").is_file()


def test_training_cut_short_writes_no_outputs(setup):
    out = setup[0] / "short"

    class Stop(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step >= VAL_EVERY + 2:
                trainer.should_stop = True

    with pytest.raises(RuntimeError, match="before its budget"):
        _run(setup, out, [Stop()])
    assert not (out / "predictions.csv").exists()
    assert (out / "state" / "last.ckpt").is_file()
