"""EF-regression training step: Perceiver IO against EchoNet's R(2+1)D-18, clips/s and peak memory.

One step = encoder forward + linear EF head + MSE loss + backward + SGD (EchoNet-Dynamic's
optimizer: lr 1e-4, momentum 0.9, weight decay 1e-4; Ouyang et al. 2020), on synthetic clips
already in memory (no data loading). Both encoders come from
:func:`cinefm.models.video.build_video_encoder` with the ``perceiver_io`` options of the config
(``config/config.yaml`` at CPU shapes, ``config/paper.yaml`` at GPU shapes), random init.

Each encoder runs in its own subprocess so its peak memory is its own: CUDA
``max_memory_allocated`` on a GPU, the process's peak RSS (``ru_maxrss``, includes the
interpreter and torch, ≈ 0.3–0.4 GB) on CPU.

Shapes: CPU default 2×3×16×64×64; with CUDA the paper's 20×3×32×112×112 (batch 20, 32 frames).

    .venv/bin/python benchmarks/echo_step.py [--batch 2 --frames 16 --size 64] [--steps 5 --warmup 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

ENCODERS = ("perceiver_io", "r2plus1d_18")


def measure(name: str, batch: int, frames: int, size: int, steps: int, warmup: int, config: str) -> dict:
    """Clips/s and peak memory of ``steps`` timed training steps of encoder ``name``."""
    import torch

    from cinefm.config import load_config
    from cinefm.models.video import build_video_encoder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    video_cfg = load_config(config)["models"]["video"]
    enc = build_video_encoder(name, frames=frames, size=size, perceiver_io=video_cfg["perceiver_io"])
    model = torch.nn.Sequential(enc, torch.nn.Linear(enc.out_dim, 1)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, frames, size, size, device=device)
    y = torch.rand(batch, 1, device=device) * 80
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    params = sum(p.numel() for p in enc.parameters())
    return {"encoder": name, "device": device, "clips_per_s": batch * steps / dt, "peak_gb": peak / 1e9,
            "params_m": params / 1e6, "memory": "cuda max_memory_allocated" if device == "cuda" else "peak RSS"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--config", default=None, help="config for perceiver_io options (default by device)")
    p.add_argument("--only", choices=ENCODERS, help=argparse.SUPPRESS)  # subprocess mode
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    batch, frames, size = (args.batch or (20 if gpu else 2), args.frames or (32 if gpu else 16),
                           args.size or (112 if gpu else 64))
    config = args.config or ("config/paper.yaml" if gpu else "config/config.yaml")
    if args.only:
        print(json.dumps(measure(args.only, batch, frames, size, args.steps, args.warmup, config)))
        return 0
    rows = []
    for name in ENCODERS:
        cmd = [sys.executable, __file__, "--only", name, "--batch", str(batch), "--frames", str(frames),
               "--size", str(size), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--threads", str(args.threads), "--config", config]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    dev = torch.cuda.get_device_name() if gpu else f"CPU {platform.processor() or platform.machine()}, {args.threads} threads"
    print(f"shape {batch}x3x{frames}x{size}x{size}, {args.steps} steps after {args.warmup} warm-up, {dev}, "
          f"perceiver options from {config}")
    print(f"{'encoder':<14} {'params M':>9} {'clips/s':>9} {'peak GB':>8}  memory")
    for r in rows:
        print(f"{r['encoder']:<14} {r['params_m']:>9.2f} {r['clips_per_s']:>9.2f} {r['peak_gb']:>8.2f}  {r['memory']}")
    per, ref = rows
    print(f"ratio perceiver_io / r2plus1d_18: clips/s {per['clips_per_s'] / ref['clips_per_s']:.2f}, "
          f"peak memory {per['peak_gb'] / ref['peak_gb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
