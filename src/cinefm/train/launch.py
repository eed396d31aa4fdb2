"""Start a training run as one process, or as one SLURM task per device with ``srun``.

The ``pretrain`` and ``finetune`` rules call :func:`launch` from their script shims.
With ``launch: lightning`` (one node, the default) the run happens in this process and
Lightning starts the other ranks of the node itself, as before. With ``launch: srun``
(``nodes > 1``, or asked for) the rule's job is a launcher job (resources ``mpi:
srun``, see :func:`cinefm.cluster.training_resources`): its script runs once, in the
batch step on the first node of the allocation, and this module runs::

    srun --nodes=N --ntasks-per-node=G --cpus-per-task=C --kill-on-bad-exit=1 --label \\
        python -m cinefm.train.launch <out>/state/launch.json

Every task re-creates the run from ``launch.json`` (the function, its arguments and the
log file) and Lightning's ``SLURMEnvironment`` reads its rank from ``SLURM_PROCID``,
``SLURM_LOCALID``, ``SLURM_NODEID`` and ``SLURM_NTASKS`` (srun sets them). The
rendezvous is this host (``MASTER_ADDR``: the first node, where global rank 0 runs)
and a free port of it (``MASTER_PORT``), exported to the tasks (srun's default
``--export=ALL``). Rank 0 appends to the rule's log; rank N writes ``<log>.rankN``;
every line srun relays to the job's SLURM log starts with the task number (``--label``).

References: Lightning's ``lightning.fabric.plugins.environments.slurm`` (2.6.6) for the
variables it reads and its checks (``SLURM_NTASKS_PER_NODE`` = devices, ``SLURM_NNODES``
= num_nodes); srun(1) for the options.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cinefm.atomic import atomic_path
from cinefm.cluster import TrainingRequest
from cinefm.config import ConfigError

log = logging.getLogger("cinefm.train.launch")  # also when run as __main__ (python -m)

# What launch.json may name: the training entry points and nothing else.
ENTRY_POINTS = {
    "pretrain": "cinefm.train.pretrain:run_pretraining",
    "finetune": "cinefm.train.finetune:run_finetune",
}
SPEC_NAME = "launch.json"


def srun_command(request: TrainingRequest, spec: Path, python: str = sys.executable) -> list[str]:
    """The ``srun`` line that starts one task per device of ``request`` on every node, each running ``spec``."""
    return ["srun", f"--nodes={request.nodes}", f"--ntasks-per-node={request.devices_per_node}",
            f"--cpus-per-task={request.cpus_per_device}", "--kill-on-bad-exit=1", "--label",
            python, "-m", "cinefm.train.launch", str(spec)]


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _entry(kind: str):
    if kind not in ENTRY_POINTS:
        raise ValueError(f"unknown training kind {kind!r}; one of {sorted(ENTRY_POINTS)}")
    module, func = ENTRY_POINTS[kind].split(":")
    return getattr(importlib.import_module(module), func)


def write_spec(path: Path, kind: str, kwargs: Mapping[str, Any], log_file: str | None,
               request: TrainingRequest) -> Path:
    """Write what every task runs (atomically): ``kind``, its keyword arguments, the log file, the request."""
    spec = {"kind": kind, "kwargs": dict(kwargs), "log": log_file,
            "request": {"nodes": request.nodes, "devices_per_node": request.devices_per_node,
                        "cpus_per_device": request.cpus_per_device, "launch": request.launch}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(spec, indent=1, default=str))
    return path


def launch(kind: str, kwargs: Mapping[str, Any], request: TrainingRequest, *, spec_dir: str | os.PathLike,
           log_file: str | None = None, gpus: int | None = None, env: Mapping[str, str] = os.environ) -> Any:
    """Run training ``kind`` (``pretrain``/``finetune``) with ``kwargs`` as ``request`` says.

    ``lightning``: calls the entry point here with ``gpus`` (the rule's ``resources.gpu``,
    which the local profile caps; default the request's devices per node) and returns its
    result. ``srun``: needs a SLURM allocation (``SLURM_JOB_ID``); writes
    ``spec_dir/launch.json``, runs :func:`srun_command` and returns None (rank 0 wrote
    the outputs); a failed task raises with the paths of the rank logs.
    """
    from cinefm.log import setup_logging
    from cinefm.train.runs import rank_log_file

    if request.launch == "lightning":
        setup_logging(rank_log_file(log_file, env))
        devices = request.devices_per_node if gpus is None else int(gpus)
        return _entry(kind)(**kwargs, **_device_kwargs(kind, devices))
    setup_logging(log_file)
    if "SLURM_JOB_ID" not in env:
        raise ConfigError(f"config.{kind}.launch srun ({request.nodes} node(s) x {request.devices_per_node} "
                          "devices) needs a SLURM allocation: run with --profile profiles/slurm, or set "
                          f"{kind}.nodes: 1 and {kind}.launch: auto to train on this machine")
    spec = write_spec(Path(spec_dir) / SPEC_NAME, kind, kwargs, log_file, request)
    cmd = srun_command(request, spec)
    child_env = {**env, "MASTER_ADDR": socket.gethostname(), "MASTER_PORT": str(free_port()),
                 "PYTHONUNBUFFERED": "1"}
    log.info("starting %d task(s) (%d node(s) x %d per node, %d CPUs each); rendezvous %s:%s: %s",
             request.world_size, request.nodes, request.devices_per_node, request.cpus_per_device,
             child_env["MASTER_ADDR"], child_env["MASTER_PORT"], shlex.join(cmd))
    if log_file:
        log.info("rank logs: %s (rank 0, appended below), %s.rank<N> (ranks 1..%d); every task's stdout/stderr "
                 "in the job's SLURM log, each line prefixed with its task number", log_file, log_file,
                 request.world_size - 1)
    for handler in logging.getLogger().handlers:
        handler.flush()
    proc = subprocess.run(cmd, env=child_env, check=False)
    setup_logging(log_file, append=True)  # rank 0 appended meanwhile: write after its lines, not over them
    if proc.returncode != 0:
        raise RuntimeError(f"srun {kind} failed (exit {proc.returncode}): read {log_file} and "
                           f"{log_file}.rank<N>, and the job's SLURM log (lines prefixed with the task number)")
    log.info("all %d task(s) finished", request.world_size)
    return None


def _device_kwargs(kind: str, devices: int) -> dict[str, int]:
    return {"requested_gpus": devices} if kind == "pretrain" else {"gpus": devices}


def run_task(spec_path: str | os.PathLike, env: Mapping[str, str] = os.environ) -> Any:
    """One srun task: read the spec, log to this rank's file, run the entry point with the job's devices."""
    from cinefm.log import setup_logging
    from cinefm.train.runs import rank_log_file

    spec = json.loads(Path(spec_path).read_text())
    own = rank_log_file(spec.get("log"), env)
    setup_logging(own, append=own == spec.get("log"))  # rank 0 continues the launcher's log
    rank = env.get("SLURM_PROCID", "?")
    log.info("task %s of %s on node %s (%s, node rank %s, local rank %s)", rank, env.get("SLURM_NTASKS", "?"),
             env.get("SLURMD_NODENAME", "?"), socket.gethostname(), env.get("SLURM_NODEID", "?"),
             env.get("SLURM_LOCALID", "?"))
    devices = int(spec["request"]["devices_per_node"])
    return _entry(spec["kind"])(**spec["kwargs"], **_device_kwargs(spec["kind"], devices))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cinefm.train.launch SPEC``: the command of every srun task."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m cinefm.train.launch <launch.json>", file=sys.stderr)
        return 2
    run_task(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
