"""Fine-tuning throughput (clips/s): the full pipeline step against the bare model step.

Runs ``--steps`` training steps of one experiment through the same code as the
``finetune`` rule (:func:`cinefm.train.finetune.prepare` + a Lightning Trainer: HDF5
reading, clip transforms, view padding, StudyModel, loss, AdamW) on an existing results
folder (splits, labels, ingest/studies.csv), then the same number of steps of the bare
model (forward, loss, backward, AdamW on random clips already on the device, batches of
the pipeline's mean shape). Prints one table: clips/s of each and their ratio (what data
loading and Lightning cost). ``--shapes paper`` uses the paper's encoder (MViT-B,
16×224×224, projection 512, MIL 128, batch 8; needs a GPU), ``cpu`` the demo config.

CPU smoke run (≈ 5 min on 2 cores, the default: 300 steps, trunk frozen, 1 study per step)::

    .venv/bin/python benchmarks/finetune.py --results results --batch-size 1 --threads 2

Paper-shape GPU smoke run (one A100/H100; any results folder with HDF5 studies, frames are
resized to 224 on the fly; ``transfer`` trains the whole MViT-B, fp32 as in the method)::

    .venv/bin/python benchmarks/finetune.py --results results --shapes paper --gpus 1 --threads 8 \
        --experiment lvef_kinetics_transfer_100 --steps 300 --batch-size 2

Peak memory of one training step at paper shapes against the trunk chunk size (``--memory``:
no results folder needed; random clips and a random-init MViT-B, transfer mode, fp32, AdamW):
each setting runs in a fresh child process, which reports its peak resident memory (CPU) or
``torch.cuda.max_memory_allocated`` (GPU); the table gives each against one pass of every clip
(``chunk 0``, the reference) and the per-clip activation memory it implies::

    .venv/bin/python benchmarks/finetune.py --shapes paper --memory --studies 1 --views 4 \
        --chunks 0 1:ckpt 2:ckpt 4 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch
import yaml

from cinefm.cluster import lightning_devices
from cinefm.config import DEFAULT_CONFIG, REPO_ROOT, deep_merge, validate_config
from cinefm.data.datamodules import close_readers
from cinefm.log import setup_logging
from cinefm.models.heads import trainable_parameters
from cinefm.train.callbacks import StepTimer
from cinefm.train.finetune import prepare


def config_for(shapes: str, batch_size: int | None) -> dict:
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if shapes == "paper":
        paper = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
        cfg["models"] = deep_merge(paper["models"], {"video": {"weights": None}})
        for key in ("mil_hidden", "batch_size", "lvef", "disease"):
            cfg["finetune"][key] = paper["finetune"][key]
    cfg["finetune"]["allow_random_baseline"] = True
    if batch_size:
        cfg["finetune"]["batch_size"] = batch_size
    validate_config(cfg)
    return cfg


def pipeline(prep, steps: int, warmup: int, gpus: int | None) -> tuple[float, StepTimer]:
    counter = StepTimer(warmup, clips_of=lambda batch: batch["mask"].sum())
    trainer = L.Trainer(max_steps=steps, max_epochs=-1, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        precision=prep.recipe.precision, callbacks=[counter], **lightning_devices(requested=gpus))
    trainer.fit(prep.module, train_dataloaders=prep.datamodule.train_dataloader())
    return counter.clips_per_second, counter


def bare(prep, counter: StepTimer, steps: int, warmup: int) -> float:
    module = prep.module.train()
    device = module.device
    b = round(sum(s[0] for s in counter.shapes) / len(counter.shapes))
    k = round(sum(s[1] for s in counter.shapes) / len(counter.shapes))
    spec = prep.datamodule.spec
    clips = torch.randn(b, k, spec.channels, spec.frames, spec.size, spec.size, device=device)
    mask = torch.ones(b, k, dtype=torch.bool, device=device)
    target = torch.full((b, len(module.hparams.tasks)), 50.0 if module.hparams.kind == "regression" else 1.0,
                        device=device)
    opt = torch.optim.AdamW(trainable_parameters(module.model), lr=module.hparams.lr)
    seconds = 0.0
    for step in range(steps):
        t0 = time.perf_counter()
        loss = module.loss(module.model(clips, mask).logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            seconds += time.perf_counter() - t0
    return (steps - warmup) * b * k / seconds


def one_step_memory(setting: str, studies: int, views: int, threads: int | None) -> dict:
    """One transfer-mode training step of the paper-shape StudyModel; peak memory of this process."""
    from cinefm.models.heads import build_study_model, set_mode

    if threads:
        torch.set_num_threads(threads)
    chunk, _, ckpt = setting.partition(":")
    paper = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
    video = {**paper["models"]["video"], "weights": None}
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    model = build_study_model(video, projection_dim=paper["models"]["projection_dim"], n_outputs=1,
                              mil_hidden=paper["finetune"]["mil_hidden"], trunk_chunk=int(chunk),
                              trunk_checkpoint=ckpt == "ckpt").to(device)
    set_mode(model, "transfer")
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-4, weight_decay=0.01)
    clips = torch.randn(studies, views, 3, video["frames"], video["size"], video["size"], device=device)
    mask = torch.ones(studies, views, dtype=torch.bool, device=device)
    t0 = time.perf_counter()
    for _ in range(2):  # the second step holds AdamW's state, as every later step does
        loss = torch.nn.functional.huber_loss(model(clips, mask).logits[:, 0], torch.full((studies,), 55.0,
                                                                                          device=device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = (time.perf_counter() - t0) / 2
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"setting": setting, "clips": studies * views, "peak_gib": peak, "seconds": seconds,
            "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu"}


def memory_table(args) -> None:
    rows = []
    for setting in args.chunks:
        cmd = [sys.executable, __file__, "--shapes", "paper", "--_one", setting, "--studies", str(args.studies),
               "--views", str(args.views)] + (["--threads", str(args.threads)] if args.threads else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
        print(f"  {setting}: {rows[-1]['peak_gib']:.2f} GiB, {rows[-1]['seconds']:.1f} s/step", flush=True)
    ref = next(r for r in rows if r["setting"] in ("0", "0:"))
    kind = "GPU max_memory_allocated" if torch.cuda.is_available() else "CPU peak RSS"
    print(f"\nMViT-B 16x224^2, transfer mode, fp32, AdamW; {args.studies} study x {args.views} views = "
          f"{ref['clips']} clips per step; {kind}; device {ref['device']}, torch threads {args.threads}\n")
    print("| trunk chunk | checkpointing | peak (GiB) | ratio to one pass | s/step |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        chunk, _, ckpt = r["setting"].partition(":")
        print(f"| {chunk if chunk != '0' else 'all (reference)'} | {'yes' if ckpt else 'no'} | "
              f"{r['peak_gib']:.2f} | {r['peak_gib'] / ref['peak_gib']:.2f} | {r['seconds']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", help="results folder with splits/, labels/, ingest/ (throughput mode)")
    ap.add_argument("--memory", action="store_true", help="peak memory per trunk chunk setting (paper shapes)")
    ap.add_argument("--chunks", nargs="+", default=["0", "1:ckpt", "2:ckpt", "2"],
                    help="settings <chunk>[:ckpt]; 0 = every clip at once (the reference)")
    ap.add_argument("--studies", type=int, default=1)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--_one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--experiment", default="lvef_kinetics_finetune_100")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--shapes", choices=["cpu", "paper"], default="cpu")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--gpus", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args._one is not None:
        print(json.dumps(one_step_memory(args._one, args.studies, args.views, args.threads)))
        return
    if args.memory:
        memory_table(args)
        return
    if not args.results:
        ap.error("--results is required (or --memory)")
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_for(args.shapes, args.batch_size)
    res = Path(args.results)
    prep = prepare(REPO_ROOT / "config" / "experiments" / f"{args.experiment}.yaml", cfg,
                   splits_csv=res / "splits" / "splits.csv", studies_csv=res / "ingest" / "studies.csv",
                   labels_csv=res / "labels" / "labels.csv", pretrain_ckpt=None)
    t0 = time.perf_counter()
    ours, counter = pipeline(prep, args.steps, args.warmup, args.gpus)
    wall = time.perf_counter() - t0
    close_readers(prep.datamodule)
    reference = bare(prep, counter, args.steps, args.warmup)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.gpus != 0 else platform.processor()
    print(f"\n{args.experiment}, shapes {args.shapes} ({cfg['models']['video']['name']} "
          f"{cfg['models']['video']['frames']}x{cfg['models']['video']['size']}^2), batch "
          f"{cfg['finetune']['batch_size']} studies, {args.steps} steps in {wall:.1f} s, "
          f"torch threads {torch.get_num_threads()}, device {device or 'cpu'}\n")
    if torch.cuda.is_available() and args.gpus != 0:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB\n")
    print("| implementation | clips/s | ratio bare / pipeline |")
    print("|---|---:|---:|")
    print(f"| cinefm finetune step (data + Lightning + model) | {ours:.1f} | — |")
    print(f"| bare model step (random clips on device) | {reference:.1f} | {reference / ours:.2f} |")


if __name__ == "__main__":
    main()
