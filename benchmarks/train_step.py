"""Pre-training step throughput (clips/s): our Lightning step against eager references, same run.

Ours: :class:`cinefm.train.pretrain.PretrainModule` in a Lightning ``Trainer`` exactly as
the ``pretrain`` rule builds it (:func:`cinefm.train.pretrain.build_trainer`: precision
from the config — bf16-mixed on GPU — gradient clipping, fused AdamW on CUDA, optional
``torch.compile``), fed synthetic batches already in memory (no data loading: this
measures the step — video tower, text tower, asymmetric InfoNCE + flooding, backward,
clipping, optimizer).

References, measured in the same process on the same batches:

- ``eager fp32``: the plain eager loop — torchvision's ``mvit_v1_b`` (or the configured
  small MViT at CPU shapes) + a transformers ``BertModel`` of the same size, two linear
  projections, the same loss, ``backward``, ``torch.optim.AdamW`` defaults, fp32, no
  Lightning. The issue's target is ours ≥ 2× this on a GPU.
- ``video fwd+bwd``: the video trunk alone (forward + backward, our precision): the
  ratio ours/this shows what the text side, loss and optimizer add.

Shapes: ``paper`` = mvit_v1_b 16×224×224, BERT-base (12 layers, hidden 768, 30,522
tokens, random init, first 6 frozen), projection 512, batch 32, text of ``--text-tokens``
(default 128 ≈ 5 report sentences); needs a GPU. ``cpu`` = config/config.yaml's demo
models; ``tiny`` = a few-thousand-parameter model for the test suite.

    .venv/bin/python benchmarks/train_step.py --shape paper [--batch-size 32] [--precision bf16-mixed] \
        [--compile] [--steps 30] [--warmup 5] [--clips-per-epoch 147000]
    .venv/bin/python benchmarks/train_step.py --shape cpu --steps 5 --warmup 2 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cinefm.config import DEFAULT_CONFIG, REPO_ROOT, deep_merge
from cinefm.models.clip import asymmetric_info_nce, flood
from cinefm.models.text import build_text_encoder
from cinefm.models.video import build_video_encoder
from cinefm.train.callbacks import StepTimer
from cinefm.train.pretrain import PretrainModule, build_trainer
from cinefm.train.runs import RunPaths

TINY_MODELS = {
    "video": {"name": "mvit_small", "weights": None, "frames": 4, "size": 16, "stochastic_depth": 0.0,
              "mvit_small": {"dims": [8, 16], "heads": [1, 2], "depths": [1, 2], "kv_stride": 2}},
    "text": {"path": None, "layers": 1, "hidden": 16, "heads": 2, "freeze_layers": 0, "pooling": "mean"},
    "projection_dim": 8,
}
VOCAB = {"paper": 30522, "cpu": 2000, "tiny": 64}


def config_for(shape: str) -> dict:
    """models + pretrain sections for ``shape``; paper weights paths replaced by random init."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if shape == "paper":
        cfg = deep_merge(cfg, yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text()))
        cfg["models"]["video"]["weights"] = None
        cfg["models"]["text"]["path"] = None
    elif shape == "tiny":
        cfg["models"] = copy.deepcopy(TINY_MODELS)
        cfg["pretrain"]["batch_size"] = 4
    return cfg


def synthetic_batches(n: int, batch: int, frames: int, size: int, tokens: int, vocab: int,
                      device: torch.device, seed: int = 0) -> list[dict]:
    """``n`` batches of random clips ``(B, 3, T, S, S)`` and token sequences ``[CLS] … [SEP]``, on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for j in range(n):
        ids = torch.randint(5, vocab, (batch, tokens), generator=gen)
        ids[:, 0], ids[:, -1] = 2, 3
        out.append({"video": torch.randn(batch, 3, frames, size, size, generator=gen).to(device),
                    "input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
                    "study_id": [f"S{j}_{i}" for i in range(batch)], "view": ["4CH"] * batch,
                    "slice": torch.zeros(batch, dtype=torch.long, device=device)})
    return out


class Cycle(Dataset):
    """The same ready batches over and over (``length`` items; use with ``batch_size=None``)."""

    def __init__(self, batches: list[dict], length: int) -> None:
        self.batches, self.length = batches, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return self.batches[i % len(self.batches)]


def ours(cfg: dict, batches: list[dict], steps: int, warmup: int, accelerator: str, vocab: int) -> float:
    """clips/s of the pre-training step through PretrainModule + the rule's Trainer (no checkpoints)."""
    pre = {**cfg["pretrain"], "epochs": 1, "progress_bar": "none", "loggers": []}
    module = PretrainModule(cfg["models"], pre, vocab_size=vocab)
    timer = StepTimer(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(pre, RunPaths(Path(tmp)), {"accelerator": accelerator, "devices": 1}, [timer])
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ModelCheckpoint)]
        loader = DataLoader(Cycle(batches, warmup + steps), batch_size=None, shuffle=False)
        trainer.fit(module, train_dataloaders=loader)
    return timer.clips_per_second


def _time(step: Callable[[dict], None], batches: list[dict], steps: int, warmup: int, device: torch.device) -> float:
    clips, seconds = 0, 0.0
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            seconds += time.perf_counter() - t0
            clips += len(batch["video"])
    return clips / max(seconds, 1e-9)


def _reference_video(cfg: dict, shape: str) -> nn.Module:
    if shape == "paper":
        from torchvision.models.video import mvit_v1_b

        model = mvit_v1_b(weights=None)
        model.head = nn.Identity()
        model.out_dim = 768
        return model
    return build_video_encoder(**cfg["models"]["video"])


def eager_reference(cfg: dict, batches: list[dict], steps: int, warmup: int, device: torch.device, shape: str,
                    vocab: int) -> float:
    """clips/s of the plain eager fp32 loop (module docstring)."""
    torch.manual_seed(0)
    video = _reference_video(cfg, shape).to(device)
    text = build_text_encoder(**cfg["models"]["text"], vocab_size=vocab).to(device)
    p = cfg["models"]["projection_dim"]
    vproj, tproj = nn.Linear(video.out_dim, p).to(device), nn.Linear(text.out_dim, p).to(device)
    params = [q for m in (video, text, vproj, tproj) for q in m.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg["pretrain"]["lr"])
    pre = cfg["pretrain"]

    def step(b: dict) -> None:
        v = vproj(video(b["video"]))
        t = tproj(text(b["input_ids"], b["attention_mask"]))
        loss = flood(asymmetric_info_nce(v, t, pre["temperature"], pre["loss_weight"]), pre["flood_level"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _time(step, batches, steps, warmup, device)


def video_alone(cfg: dict, batches: list[dict], steps: int, warmup: int, device: torch.device,
                precision: str) -> float:
    """clips/s of the video trunk's forward + backward at our precision (no optimizer)."""
    torch.manual_seed(0)
    video = build_video_encoder(**cfg["models"]["video"]).to(device)
    bf16 = device.type == "cuda" and precision.startswith("bf16")
    ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step(b: dict) -> None:
        with ctx():
            out = video(b["video"])
        out.float().square().mean().backward()
        video.zero_grad(set_to_none=True)

    return _time(step, batches, steps, warmup, device)


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else the platform's machine name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=["paper", "cpu", "tiny"], default="cpu")
    ap.add_argument("--batch-size", type=int, default=None, help="default: pretrain.batch_size of the shape")
    ap.add_argument("--precision", default=None, help="default: pretrain.precision (32 on CPU)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoders (pretrain.compile)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--text-tokens", type=int, default=None, help="tokens per report (default 128; tiny 8)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--clips-per-epoch", type=int, default=147_000,
                    help="for the projection: pre-training clips per epoch (paper ≈ 293k videos × 0.75 × 0.67)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    if args.shape == "paper" and not cuda:
        print("--shape paper needs a GPU (mvit_v1_b at 16x224x224 with batch 32); use --shape cpu", file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    cfg = config_for(args.shape)
    if args.batch_size:
        cfg["pretrain"]["batch_size"] = args.batch_size
    if args.precision:
        cfg["pretrain"]["precision"] = args.precision
    cfg["pretrain"]["compile"] = bool(args.compile)
    precision = str(cfg["pretrain"]["precision"]) if cuda else "32"
    v = cfg["models"]["video"]
    tokens = args.text_tokens or (8 if args.shape == "tiny" else 128)
    vocab = VOCAB[args.shape]
    bs = cfg["pretrain"]["batch_size"]
    batches = synthetic_batches(2, bs, v["frames"], v["size"], tokens, vocab, device)

    L.seed_everything(0, verbose=False)
    ours_rate = ours(cfg, batches, args.steps, args.warmup, "gpu" if cuda else "cpu", vocab)
    ref_rate = eager_reference(cfg, batches, args.steps, args.warmup, device, args.shape, vocab)
    video_rate = video_alone(cfg, batches, args.steps, args.warmup, device, precision)

    name = torch.cuda.get_device_name(device) if cuda else cpu_name()
    print(f"pre-training step, shape {args.shape}: {v['name']} {v['frames']}x{v['size']}x{v['size']}, "
          f"BERT {cfg['models']['text']['layers']}x{cfg['models']['text']['hidden']}, batch {bs}, {tokens} tokens; "
          f"{name}; torch {torch.__version__}; {torch.get_num_threads()} threads")
    print("| step | precision | clips/s | ours / this |")
    print("|---|---|---:|---:|")
    print(f"| ours: PretrainModule + Trainer{' + compile' if args.compile else ''} | {precision} | {ours_rate:.2f} | 1.00 |")
    print(f"| reference: eager torchvision MViT + BERT, AdamW | fp32 | {ref_rate:.2f} | {ours_rate / ref_rate:.2f} |")
    print(f"| reference: video trunk forward+backward alone | {precision} | {video_rate:.2f} | "
          f"{ours_rate / video_rate:.2f} |")
    if cuda:
        days = 600 * args.clips_per_epoch / ours_rate / 86400
        print(f"projected 600 epochs x {args.clips_per_epoch} clips: {days:.1f} days on this GPU, "
              f"{days / 4:.1f} days on 4 of them (linear DDP scaling assumed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
