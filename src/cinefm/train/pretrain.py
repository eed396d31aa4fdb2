"""Contrastive video–report pre-training: the LightningModule and the run of the ``pretrain`` rule.

:class:`PretrainModule` holds the two-tower :class:`~cinefm.models.clip.CLIPModel` as
attribute ``model`` — checkpoint keys ``model.video.*`` / ``model.video_proj.*`` are the
contract :func:`cinefm.models.heads.load_pretrained_video` reads. Per step:

    L = mean_i[ λ·l_i(v→u) + (1−λ)·l_i(u→v) ]    (asymmetric InfoNCE, temperature τ)
    L̃ = |L − b| + b                                (flooding, level b)

AdamW(lr, weight_decay, eps) over the trainable parameters (BERT's frozen layers are
left out), MultiStepLR(milestones in epochs, gamma). Precision, devices, gradient
clipping and DDP belong to the Trainer (:func:`run_pretraining`).

Batches: clips drawn at random (the method), or with ``pretrain.study_batches`` from
distinct studies so a batch never pairs a clip with another clip's identical report as a
negative (:mod:`cinefm.train.sampling`; one process only).

DDP over W = nodes × devices processes (:mod:`cinefm.train.launch`): ``batch_size`` is
per process, so the global batch is W·batch_size (the method: 4 × 32 = 128). The
negatives are per process by default (each rank's loss over its own batch, B − 1
negatives per clip; gradients averaged by DDP), as the method trained.
``pretrain.gather_negatives: true`` all-gathers the embeddings with gradients
(Lightning's ``all_gather(sync_grads=True)``, i.e. ``torch.distributed.nn.functional.all_gather``
as open_clip's ``gather_features(gather_with_grad=True)``) so every rank computes the
loss over the global batch (W·B − 1 negatives); since all ranks then hold the same loss
and the gather's backward sums their gradients, DDP's average is exactly the gradient
of one process with the global batch. The learning rate is ``pretrain.lr`` as stated
(``lr_scaling: none``, the method) or scaled with the global batch against
``lr_reference_batch`` (``linear``: Goyal et al. 2017; ``sqrt``), see :func:`effective_lr`.
A run resumed on another number of processes logs the old and new world size, global
batch, negatives and learning rate, and moves the optimizer to the new learning rate.

Validation: the loss on validation batches (clips of a study are consecutive, so a
batch holds near-duplicate reports and this loss runs above the training loss) and
study-level retrieval recall@k over the whole validation split (video: mean of the
study's clip embeddings; text: mean of its clips' sampled-sentence embeddings),
next to chance (k/N).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger

from cinefm.config import ConfigError
from cinefm.data.datamodules import close_readers
from cinefm.data.seeding import stable_seed
from cinefm.embed.retrieval import study_retrieval
from cinefm.models.clip import CLIPModel, asymmetric_info_nce, build_clip_model, flood
from cinefm.train.callbacks import (
    AtomicCheckpointIO,
    EpochSummary,
    LastCheckpoint,
    extra_loggers,
    periodic_checkpoints,
    progress_bar,
)
from cinefm.train.runs import (
    RunPaths,
    config_fingerprint,
    find_resume_checkpoint,
    publish,
    resolve_precision,
    write_metrics,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


class PretrainModule(L.LightningModule):
    """Contrastive pre-training of ``model`` (a CLIPModel) from the ``models`` and ``pretrain`` config sections.

    Batches are :class:`cinefm.data.collate.ClipCollate` dicts (``video``, ``input_ids``,
    ``attention_mask``, ``study_id``, ...). ``fingerprint`` (see
    :func:`cinefm.train.runs.config_fingerprint`) is stored with the hyper-parameters so
    a resumed run can check it continues the same configuration.
    """

    def __init__(self, models_cfg: Mapping[str, Any], pretrain_cfg: Mapping[str, Any], vocab_size: int,
                 fingerprint: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = dict(pretrain_cfg)
        self.model: CLIPModel = build_clip_model(
            dict(models_cfg), vocab_size=vocab_size, temperature=float(pretrain_cfg["temperature"]),
            learnable_temperature=bool(pretrain_cfg["learnable_temperature"]))
        self.recall_ks = tuple(int(k) for k in pretrain_cfg["recall_ks"])
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------ steps
    def _loss(self, video: torch.Tensor, text: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        return asymmetric_info_nce(video.float(), text.float(), temperature, float(self.cfg["loss_weight"]))

    def setup(self, stage: str) -> None:
        """Compile the two encoders in place when ``pretrain.compile`` (state-dict keys unchanged)."""
        if self.cfg["compile"] and stage == "fit" and not getattr(self, "_compiled", False):
            self.model.video.compile()
            self.model.text.compile()
            self._compiled = True

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        out = self.model(batch["video"], batch["input_ids"], batch["attention_mask"])
        video_bp, text_bp = out.video, out.text
        if self.cfg["gather_negatives"] and self.trainer.world_size > 1:
            video_bp = self.all_gather(video_bp, sync_grads=True).flatten(0, 1)
            text_bp = self.all_gather(text_bp, sync_grads=True).flatten(0, 1)
        nce = self._loss(video_bp, text_bp, out.temperature)
        loss = flood(nce, float(self.cfg["flood_level"]))
        n = len(batch["video"])
        self.log("train/loss", nce, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("train/flooded_loss", loss, on_step=False, on_epoch=True, batch_size=n)
        self.log("train/temperature", out.temperature.detach(), on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        out = self.model(batch["video"], batch["input_ids"], batch["attention_mask"])
        n = len(batch["video"])
        self.log("val/loss", self._loss(out.video, out.text, out.temperature), on_epoch=True,
                 sync_dist=True, batch_size=n)
        codes = torch.tensor([stable_seed(s) for s in batch["study_id"]], dtype=torch.long, device=self.device)
        self._val.append((out.video.detach().float(), out.text.detach().float(), codes))

    def on_validation_epoch_end(self) -> None:
        if not self._val or self.trainer.sanity_checking:
            self._val = []
            return
        video, text, codes = (torch.cat(parts) for parts in zip(*self._val, strict=True))
        self._val = []
        if self.trainer.world_size > 1:  # every rank holds as many clips (the sampler pads)
            video, text, codes = (self.all_gather(t).flatten(0, 1) for t in (video, text, codes))
        for name, value in validation_recall(video, text, codes, self.recall_ks).items():
            self.log(name, value, sync_dist=False)

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Clip batches → ``{"clips": video embeddings, ids}``; report batches → ``{"reports": ...}``."""
        if "video" in batch:
            emb = self.model.encode_video(batch["video"])
            return {"kind": "clips", "emb": emb.float().cpu(), "study_id": list(batch["study_id"]),
                    "view": list(batch["view"]), "slice": batch["slice"].cpu()}
        emb = self.model.encode_text(batch["input_ids"], batch["attention_mask"])
        return {"kind": "reports", "emb": emb.float().cpu(), "study_id": list(batch["study_id"]),
                "patient_id": list(batch["patient_id"])}

    # -------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> dict:
        params = [p for p in self.model.parameters() if p.requires_grad]
        fused = self.device.type == "cuda"  # fused AdamW kernels exist for CUDA tensors only
        lr = effective_lr(self.cfg, self._trainer.world_size if self._trainer is not None else 1)
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=float(self.cfg["weight_decay"]),
                                      eps=float(self.cfg["eps"]), fused=fused)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=[int(m) for m in self.cfg["lr_milestones"]], gamma=float(self.cfg["lr_gamma"]))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ---------------------------------------------------------- world size
    def layout(self) -> WorldLayout:
        """This run's processes, global batch, negatives per clip and learning rate."""
        t = self.trainer
        return world_layout(self.cfg, t.world_size, t.num_nodes, t.num_devices)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[LAYOUT_KEY] = asdict(self.layout())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resumed_layout = checkpoint.get(LAYOUT_KEY)

    def on_train_start(self) -> None:
        now = self.layout()
        old = getattr(self, "_resumed_layout", None)
        if self.trainer.is_global_zero:
            log.info("DDP layout: %s", now.describe())
        if old is None:
            return
        was = WorldLayout(**old)
        if was.world_size != now.world_size and self.trainer.is_global_zero:
            log.warning("resuming at epoch %d on another world size: %s (the checkpoint's) -> %s; the data of "
                        "each epoch is now split over %d processes", self.current_epoch + 1, was.describe(),
                        now.describe(), now.world_size)
        if not math.isclose(was.lr, now.lr, rel_tol=1e-12):
            rescale_lr(self.trainer, now.lr / was.lr)

    def on_train_epoch_start(self) -> None:
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True,
                 batch_size=1)


LAYOUT_KEY = "cinefm_world_layout"  # checkpoint entry: the WorldLayout the checkpoint was written under
LR_SCALINGS = ("none", "linear", "sqrt")


def effective_lr(pre: Mapping[str, Any], world_size: int) -> float:
    """The learning rate for ``world_size`` processes of ``pretrain.batch_size`` each.

    ``lr_scaling``: ``none`` → ``lr`` (the method: 4.8e-5 at its global batch of 128, no
    rule stated); ``linear`` → ``lr · G / lr_reference_batch`` with G = world_size ·
    batch_size (Goyal et al. 2017, "Accurate, large minibatch SGD"); ``sqrt`` →
    ``lr · sqrt(G / lr_reference_batch)`` (the square-root rule often used with Adam).
    """
    mode = str(pre.get("lr_scaling", "none"))
    if mode not in LR_SCALINGS:
        raise ConfigError(f"config.pretrain.lr_scaling: {mode!r}; one of {', '.join(LR_SCALINGS)}")
    lr = float(pre["lr"])
    if mode == "none":
        return lr
    ratio = max(1, int(world_size)) * int(pre["batch_size"]) / float(pre["lr_reference_batch"])
    return lr * (ratio if mode == "linear" else math.sqrt(ratio))


@dataclass(frozen=True)
class WorldLayout:
    """Processes of a run and what follows from them (stored in every checkpoint)."""

    world_size: int
    num_nodes: int
    devices: int
    batch_per_device: int
    global_batch: int
    negatives_per_clip: int
    gather_negatives: bool
    lr: float

    def describe(self) -> str:
        where = "across ranks (all-gather)" if self.gather_negatives else "per device"
        return (f"world size {self.world_size} ({self.num_nodes} node(s) x {self.devices} device(s)), batch "
                f"{self.batch_per_device} per device, global batch {self.global_batch}, {self.negatives_per_clip} "
                f"negatives per clip ({where}), lr {self.lr:.4g}")


def world_layout(pre: Mapping[str, Any], world_size: int, num_nodes: int = 1, devices: int = 1) -> WorldLayout:
    """The :class:`WorldLayout` of ``world_size`` processes under the ``pretrain`` section ``pre``."""
    batch = int(pre["batch_size"])
    gather = bool(pre.get("gather_negatives")) and world_size > 1
    return WorldLayout(int(world_size), int(num_nodes), int(devices), batch, batch * int(world_size),
                       batch * (int(world_size) if gather else 1) - 1, gather, effective_lr(pre, world_size))


def rescale_lr(trainer: L.Trainer, factor: float) -> None:
    """Multiply the learning rate of every optimizer group and the schedulers' base by ``factor``.

    A resumed optimizer and MultiStepLR restore the learning rate of the old world size;
    with ``lr_scaling`` other than ``none`` the new world size needs its own.
    """
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
    for config in trainer.lr_scheduler_configs:
        config.scheduler.base_lrs = [lr * factor for lr in config.scheduler.base_lrs]
    log.info("learning rate x %.4g for the new world size", factor)


def validation_recall(video: torch.Tensor, text: torch.Tensor, study_codes: torch.Tensor,
                      ks: Sequence[int]) -> dict[str, float]:
    """Study-level recall@k (both directions) and chance from clip embeddings and study codes.

    A study's video (text) embedding is the mean of its clips' video (text) embeddings.
    Returns ``val/recall@k_v2t``, ``val/recall@k_t2v`` and ``val/chance@k``; empty with
    fewer than 2 studies.
    """
    codes = study_codes.cpu().numpy()
    studies, inverse = np.unique(codes, return_inverse=True)
    if len(studies) < 2:
        return {}
    sums = {}
    for name, emb in (("video", video), ("text", text)):
        x = emb.float().cpu().numpy().astype(np.float64)
        acc = np.zeros((len(studies), x.shape[1]))
        np.add.at(acc, inverse, x)
        sums[name] = acc
    out = {}
    for row in study_retrieval(sums["video"], sums["text"], ks):
        tag = "v2t" if row["direction"] == "video_to_text" else "t2v"
        out[f"val/recall@{row['k']}_{tag}"] = row["recall"]
        out[f"val/chance@{row['k']}"] = row["chance"]
    return out


@dataclass(frozen=True)
class PretrainResult:
    """What a pre-training run produced (paths exist on rank 0 only; None on other ranks)."""

    last_ckpt: Path | None
    metrics_csv: Path | None
    embeddings: Path | None
    epochs: int
    resumed_from: Path | None


def vocab_size_of(tokenizer_dir: PathLike) -> int:
    """Vocabulary size of the saved tokenizer (``len(tokenizer)``, added tokens included)."""
    from cinefm.text.tokenizer import load_tokenizer

    return len(load_tokenizer(tokenizer_dir))


def build_trainer(pre: Mapping[str, Any], paths: RunPaths, layout: Mapping[str, Any],
                  callbacks: Sequence[Callback] = ()) -> L.Trainer:
    """The Trainer of a pre-training run: devices from ``layout``, the rest from ``pretrain``."""
    plugins = [*layout.get("plugins", []), AtomicCheckpointIO()]
    device_args = {k: layout[k] for k in ("accelerator", "devices", "num_nodes", "strategy") if k in layout}
    bar = progress_bar(str(pre["progress_bar"]))
    cbs: list[Callback] = [
        LastCheckpoint(paths.state),
        periodic_checkpoints(paths.checkpoints, int(pre["checkpoint_every"]), int(pre["keep_checkpoints"])),
        EpochSummary(),
        *([bar] if bar is not None else []),
        *callbacks,
    ]
    loggers = [CSVLogger(save_dir=str(paths.state), name="logs"),
               *extra_loggers(pre["loggers"], paths.state, str(pre["run"]))]
    clip = pre.get("gradient_clip")
    return L.Trainer(
        **device_args,
        plugins=plugins,
        precision=resolve_precision(pre["precision"], str(layout.get("accelerator", "cpu"))),
        max_epochs=int(pre["epochs"]),
        gradient_clip_val=float(clip) if clip else None,
        gradient_clip_algorithm="norm",
        callbacks=cbs,
        logger=loggers,
        default_root_dir=str(paths.state),
        log_every_n_steps=int(pre["log_every_steps"]),
        check_val_every_n_epoch=int(pre["val_every"]),
        enable_progress_bar=bar is not None,
        enable_model_summary=True,
        deterministic="warn",  # torch's deterministic algorithms (a warning where an op has none: GPU)
    )


def run_pretraining(
    config: Mapping[str, Any],
    *,
    splits_csv: PathLike,
    studies_csv: PathLike | Sequence[PathLike],
    reports: PathLike,
    tokenizer: PathLike,
    out_dir: PathLike,
    requested_gpus: int | None = None,
    layout: Mapping[str, Any] | None = None,
    threads: int | None = None,
    callbacks: Sequence[Callback] = (),
) -> PretrainResult:
    """Train (or resume, or find finished) the run in ``out_dir``, then embed the validation split.

    ``config``: the pipeline configuration (sections ``models``, ``data``, ``pretrain``).
    ``layout``: Trainer device arguments; default :func:`cinefm.cluster.lightning_devices`
    for ``requested_gpus`` (the rule's ``resources.gpu``). ``threads``: the job's CPUs,
    split between the processes of the node (torch intra-op threads). ``callbacks``:
    extra Lightning callbacks (tests). Writes ``last.ckpt``,
    ``metrics.csv`` and ``embeddings.h5`` into ``out_dir`` (rank 0); see
    :mod:`cinefm.train.runs` for the folder layout and resume rules.
    """
    from cinefm.cluster import lightning_devices
    from cinefm.embed.extract import embed_validation
    from cinefm.train.sampling import pretrain_datamodule

    pre = config["pretrain"]
    paths = RunPaths(Path(out_dir))
    layout = dict(layout) if layout is not None else lightning_devices(requested=requested_gpus)
    if threads:  # the job's CPUs, shared by the processes of this node
        torch.set_num_threads(max(1, int(threads) // int(layout.get("devices", 1))))
    fingerprint = config_fingerprint(config)
    resume = find_resume_checkpoint(paths, fingerprint)

    L.seed_everything(int(pre["seed"]), workers=True, verbose=False)
    processes = int(layout.get("devices", 1)) * int(layout.get("num_nodes", 1))
    if pre["study_batches"] and processes > 1:
        raise ConfigError(f"pretrain.study_batches: true trains in one process, but this job runs {processes} "
                          "(DDP); set pretrain.study_batches: false (large cohorts rarely draw two clips of "
                          "one study into a batch) or train on one device")
    datamodule = pretrain_datamodule(config, splits_csv=splits_csv, studies_csv=studies_csv,
                                     reports=reports, tokenizer=tokenizer)
    module = PretrainModule(config["models"], pre, vocab_size_of(tokenizer), fingerprint)
    trainer = build_trainer(pre, paths, layout, callbacks)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
        done = trainer.fit_loop.epoch_progress.current.completed
        if trainer.interrupted or done < int(pre["epochs"]):
            raise RuntimeError(f"pre-training stopped after {done} of {pre['epochs']} epochs; rerun the "
                               f"pretrain rule to resume from {paths.resume}")
        embeddings = embed_validation(trainer, module, datamodule, paths.embeddings, shard_dir=paths.shards,
                                      attrs={"run": str(pre["run"]), "epoch": done,
                                             "checkpoint": str(paths.last_ckpt)})
    finally:
        close_readers(datamodule)
    if not trainer.is_global_zero:
        return PretrainResult(None, None, None, done, resume)
    publish(paths.resume, paths.last_ckpt)
    write_metrics(paths.logs, paths.metrics_csv)
    log.info("pre-training %s: %d epochs; wrote %s, %s, %s", pre["run"], done, paths.last_ckpt,
             paths.metrics_csv, embeddings)
    return PretrainResult(paths.last_ckpt, paths.metrics_csv, embeddings, done, resume)
