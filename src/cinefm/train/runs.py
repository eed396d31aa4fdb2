"""Training run folders: layout, resume after preemption, precision, merged metrics.

A run folder (``results/pretrain/{run}/``) holds the outputs a rule declares and a
``state/`` folder the rule does not declare, so Snakemake never deletes it when it
reruns a failed or preempted job::

    last.ckpt        output: the finished run's checkpoint (published from state/last.ckpt)
    metrics.csv      output: the CSV logs of every attempt, merged (see merge_metrics)
    embeddings.h5    output of the pre-training job (cinefm.embed)
    state/last.ckpt             overwritten (atomically) after every epoch: the resume point
    state/checkpoints/*.ckpt    periodic checkpoints (every ``checkpoint_every`` epochs)
    state/logs/version_N/       Lightning's CSVLogger, one version per attempt
    state/embed/                per-rank embedding shards (removed after merging)

A rerun finds ``state/last.ckpt`` and continues from the epoch after it; a finished
run's rerun restores, trains nothing, and publishes again. A checkpoint written under
another configuration (anything but the keys in ``RESUMABLE_KEYS``) is refused with
a message that says what changed, so a run never silently continues a different model.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cinefm.atomic import atomic_path, write_csv
from cinefm.config import ABSENT, differences

log = logging.getLogger(__name__)

# pretrain keys that may change between attempts of one run (hardware, book-keeping, evaluation).
RESUMABLE_KEYS = frozenset({
    "run", "epochs", "num_workers", "checkpoint_every", "keep_checkpoints", "nodes", "devices_per_node", "launch",
    "threads", "mem_mb",
    "runtime", "precision", "compile", "loggers", "progress_bar", "log_every_steps", "val_every",
    "recall_ks", "umap_neighbors", "umap_min_dist", "structure_k", "structure_permutations",
})
# Locations of files, not properties of the model: a run may move between machines.
PATH_KEYS = (("models", "video", "weights"), ("models", "text", "path"), ("data", "max_open_files"))
MIXED_PRECISIONS = {"16-mixed", "bf16-mixed", "bf16-true", "16-true", "bf16", "16"}


@dataclass(frozen=True)
class RunPaths:
    """Paths of one run folder (module docstring)."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def resume(self) -> Path:
        """The rolling checkpoint, overwritten after every epoch."""
        return self.state / "last.ckpt"

    @property
    def checkpoints(self) -> Path:
        return self.state / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def shards(self) -> Path:
        return self.state / "embed"

    @property
    def last_ckpt(self) -> Path:
        return self.root / "last.ckpt"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings.h5"


def resolve_precision(precision: str | int, accelerator: str) -> str:
    """Lightning ``precision`` for this device: the configured one on GPU, ``32-true`` on CPU.

    Mixed/half precision on CPU (autocast to bfloat16) is slower than fp32 on most CPUs
    and not what the demo measures, so it is replaced with a warning.
    """
    text = str(precision)
    if text == "32":
        return "32-true"
    if accelerator == "cpu" and text in MIXED_PRECISIONS:
        log.warning("precision %s requested but training on CPU: using 32-true", text)
        return "32-true"
    return text


def config_fingerprint(config: Mapping[str, Any], section: str = "pretrain") -> dict[str, Any]:
    """The parts of ``config`` a checkpoint must agree with to be resumed.

    ``models`` and ``data`` (minus file locations) and ``config[section]`` minus
    ``RESUMABLE_KEYS``.
    """
    out: dict[str, Any] = {
        "models": plain_data(config["models"]),
        "data": plain_data(config["data"]),
        section: {k: plain_data(v) for k, v in config[section].items() if k not in RESUMABLE_KEYS},
    }
    for path in PATH_KEYS:
        node = out
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return out


def plain_data(value: Any) -> Any:
    """YAML-like plain data (tuples → lists) so fingerprints compare equal after a round trip."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(v) for v in value]
    return value


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "config") -> list[str]:
    """Keys whose values differ between two fingerprints, as ``config.a.b: old -> new``."""
    def shown(value: Any) -> str:
        return "'<absent>'" if value is ABSENT else repr(value)

    return [f"{prefix}.{key}: {shown(a)} -> {shown(b)}" for key, a, b in differences(old, new)]


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """``epoch``, ``global_step`` and ``hyper_parameters`` of a Lightning checkpoint (memory-mapped read)."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return {"epoch": int(ckpt.get("epoch", -1)), "global_step": int(ckpt.get("global_step", 0)),
            "hyper_parameters": dict(ckpt.get("hyper_parameters") or {})}


def _epoch_of(path: Path) -> int:
    m = re.search(r"(\d+)", path.stem)
    return int(m.group(1)) if m else -1


def find_resume_checkpoint(paths: RunPaths, fingerprint: Mapping[str, Any]) -> Path | None:
    """The checkpoint to resume from: ``state/last.ckpt``, else the newest readable periodic one.

    Unreadable files (a crash while the file system was writing) are skipped with a
    warning. A checkpoint of another configuration is not resumed: Snakemake reruns the
    rule because its config changed, so the old state folder is kept aside as
    ``state.superseded.<n>`` (rank 0 moves it) and training starts over.
    """
    candidates = [paths.resume] + sorted(paths.checkpoints.glob("*.ckpt"), key=_epoch_of, reverse=True)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            meta = read_checkpoint_meta(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is skipped the same way
            log.warning("%s: unreadable checkpoint (%s); trying an older one", path, err)
            continue
        old = meta["hyper_parameters"].get("fingerprint")
        diff = config_differences(old, plain_data(fingerprint)) if old is not None else []
        if diff:
            aside = _set_state_aside(paths)
            log.warning("%s was written under another configuration (%s%s): starting over; the old state "
                        "is kept in %s (set a new pretrain.run to keep runs side by side)", path,
                        "; ".join(diff[:6]), " …" if len(diff) > 6 else "", aside)
            return None
        log.info("resuming from %s (epoch %d done, step %d)", path, meta["epoch"] + 1, meta["global_step"])
        return path
    return None


def _set_state_aside(paths: RunPaths) -> Path:
    """Move ``state/`` to the first free ``state.superseded.<n>`` (rank 0 only); return that path."""
    n = 1
    while (aside := paths.root / f"state.superseded.{n}").exists():
        n += 1
    if os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0" and paths.state.exists():
        os.replace(paths.state, aside)
    return aside


def merge_metrics(attempts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One metrics table from the CSV logs of successive attempts of a run.

    An attempt that resumed at epoch e redoes epoch e onwards, so the rows of earlier
    attempts with ``epoch >= e`` (an epoch cut short by the kill) are dropped; attempts
    that logged nothing are ignored. Columns are the union, ``epoch``/``step`` first.
    """
    merged = pd.DataFrame()
    for table in attempts:
        if table.empty or "epoch" not in table:
            continue
        start = pd.to_numeric(table["epoch"], errors="coerce").min()
        if not merged.empty:
            merged = merged[pd.to_numeric(merged["epoch"], errors="coerce") < start]
        merged = pd.concat([merged, table], ignore_index=True)
    if merged.empty:
        return pd.DataFrame(columns=["epoch", "step"])
    first = [c for c in ("epoch", "step") if c in merged]
    return merged[first + sorted(c for c in merged if c not in first)]


def collect_metrics(logs_dir: Path) -> pd.DataFrame:
    """Merge ``logs_dir/version_N/metrics.csv`` in version order (:func:`merge_metrics`)."""
    versions = sorted(logs_dir.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    return merge_metrics([pd.read_csv(p) for p in versions if p.stat().st_size])


def write_metrics(logs_dir: Path, out_csv: Path) -> pd.DataFrame:
    """Write the merged metrics of every attempt to ``out_csv`` (atomically)."""
    table = collect_metrics(logs_dir)
    write_csv(table, out_csv)
    return table


def publish(src: Path, dst: Path) -> Path:
    """Place ``src`` at ``dst`` atomically: a hard link (no copy of a large checkpoint), else a copy.

    A later atomic replacement of ``src`` does not change ``dst`` (the link keeps the old file).
    """
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
    return dst


def rank_log_file(log_file: str | os.PathLike | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The log file of this process: ``log_file`` on rank 0, ``<log_file>.rank<N>`` on DDP rank N.

    DDP ranks started by Lightning re-run the entry script; without this they would
    truncate rank 0's log. N is the global rank: ``SLURM_PROCID`` when srun started
    several tasks (:mod:`cinefm.train.launch`), else Lightning's ``LOCAL_RANK`` (one node).
    """
    if log_file is None:
        return None
    srun_tasks = env.get("SLURM_NTASKS", "1").split("(")[0]
    if srun_tasks.isdigit() and int(srun_tasks) > 1 and env.get("SLURM_PROCID"):
        rank = env["SLURM_PROCID"]
    else:
        rank = env.get("LOCAL_RANK", "0")
    return str(log_file) if rank in ("", "0") else f"{log_file}.rank{rank}"
