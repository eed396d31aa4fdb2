"""Pre-training over several SLURM tasks and nodes (pretrain.nodes / devices_per_node, srun launch).

Pure checks (no SLURM): the paper config with ``pretrain.nodes: 2`` dry-runs to the
request Snakemake resolves, and snakemake-executor-plugin-slurm's own submit-string
function turns it into the ``sbatch`` line. SLURM checks: a real two-node cluster on
this machine (tools/slurm-two-node-cluster.sh: two slurmd daemons on one host; CPUs
only, the nodes' GPUs are fake) runs the project's ``pretrain`` rule (the real rule
file, on the tiny pre-training cohort of tests/train/pretrain_cohort.py) through the
shipped profile twice side by side: 2 tasks on one node and 2 tasks on each of 2 nodes,
every task a CPU process (gloo) started by ``srun`` inside the sbatch allocation. Both
gather the negatives across ranks, so their per-step losses must equal those of one
process with the same global batch (4): tolerance ``LOSS_ATOL``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml

from cinefm.config import DEFAULT_CONFIG, REPO_ROOT
from cinefm.train.pretrain import run_pretraining
from cinefm.train.runs import read_checkpoint_meta
from train.pretrain_cohort import build_cohort, toy_config  # tests/ is on sys.path (rootdir import)

from .conftest import SNAKEMAKE, SNAKEMAKE_ENV, real_slurm_env
from .test_slurm import PROFILE_DIR, TEST_ONLY_FLAGS

CLUSTER_SCRIPT = REPO_ROOT / "tools" / "slurm-two-node-cluster.sh"
# float32 sums in another order (gloo all-gather, DDP's gradient average): measured 7e-7 over 6 steps
LOSS_ATOL = 1e-5
GLOBAL_BATCH = 4
# every run: the toy models (BERT dropout off, so the ranks draw no random masks), one epoch of
# 24 clips = 6 steps, negatives gathered across ranks, lr scaled with the global batch (= reference)
COMMON = {"epochs": 1, "gather_negatives": True, "lr_scaling": "linear", "lr_reference_batch": GLOBAL_BATCH,
          "threads": 2}


def rule_snakefile(root: Path, config: dict) -> Path:
    """A Snakefile holding the project's pre-training rules (workflow/rules/pretrain.smk) and nothing upstream."""
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    path = root / "Snakefile"
    path.write_text(f"""configfile: "config.yaml"
R = config["results"]
def env(name):
    return f"../../envs/{{name}}.yaml"
def pretrain_dir():
    return f"{{R}}/pretrain/{{config['pretrain']['run']}}"
include: {str(REPO_ROOT / "workflow" / "rules" / "pretrain.smk")!r}
""")
    return path


def pretrain_config(results: Path, run: str, **pretrain) -> dict:
    cfg = toy_config(**COMMON, run=run, **pretrain)
    cfg["models"]["text"]["dropout"] = 0.0
    cfg["results"] = str(results)
    return cfg


# ----------------------------------------------------------------- the request, without SLURM


CLIP_EXPERIMENT = "lvef_clip_transfer_100"  # a fine-tuning job that needs the pre-training job


def dry_run_resources(tmp_path: Path, **sections) -> dict[str, dict[str, str]]:
    """The paper config on a placeholder archive, dry run with profiles/slurm: the resolved resources of
    ``pretrain`` and one ``finetune`` job (``sections``: config overrides, e.g. ``pretrain={"nodes": 2}``)."""
    for folder in ("dicom", "ukb", "acdc", "kaggle"):
        (tmp_path / folder).mkdir(exist_ok=True)
    (tmp_path / "reports.csv").write_text("patient_id,accession_number,report_text\n")
    (tmp_path / "lvef.csv").write_text("eid,22420-2.0\n")
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), **sections,
                                    "cohort": {"dicom_root": str(tmp_path / "dicom"),
                                               "reports_csv": str(tmp_path / "reports.csv")},
                                    "external": {"ukb": {"root": str(tmp_path / "ukb"),
                                                         "lvef": str(tmp_path / "lvef.csv")},
                                                 "acdc": {"root": str(tmp_path / "acdc")},
                                                 "kaggle": {"root": str(tmp_path / "kaggle")}}}))
    proc = subprocess.run([SNAKEMAKE, "-n", "--snakefile", str(REPO_ROOT / "Snakefile"), "--profile", str(PROFILE_DIR),
                           "--configfile", str(DEFAULT_CONFIG.with_name("paper.yaml")), str(site), "--",
                           str(tmp_path / "results" / "finetune" / CLIP_EXPERIMENT / "best.ckpt")],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = dict(re.findall(r"^rule (pretrain|finetune):\n(?:    .*\n)*?    resources: (.*)$", proc.stdout,
                            flags=re.M))
    return {rule: dict(item.split("=", 1) for item in line.split(", ")) for rule, line in found.items()}


class _Resources(dict):
    """What the plugin reads from a job's resources: ``get`` and attribute access."""

    __getattr__ = dict.__getitem__


def sbatch_line(resources: dict[str, str], threads: int) -> str:
    """The plugin's own sbatch command for a job with these resources (snakemake-executor-plugin-slurm 2.8.0)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    typed = _Resources({k: int(v) if v.isdigit() else v for k, v in resources.items()})
    job = SimpleNamespace(resources=typed, threads=threads)
    params = {"run_uuid": "run", "slurm_logfile": "x.log", "comment_str": "rule_pretrain", "workdir": None,
              "account": f"-A {typed['slurm_account']}", "partition": f"-p {typed['slurm_partition']}"}
    return get_submit_command(job, params) + set_gres_string(job)


def test_paper_config_on_two_nodes_requests_one_task_per_gpu_on_each_node(tmp_path):
    found = dry_run_resources(tmp_path, pretrain={"nodes": 2},
                              finetune={"nodes": 2, "devices_per_node": 2, "num_workers": 4})
    res = found["pretrain"]
    assert {k: res[k] for k in ("nodes", "tasks_per_node", "cpus_per_task", "gpu", "gpu_model", "mpi")} == {
        "nodes": "2", "tasks_per_node": "4", "cpus_per_task": "8", "gpu": "8", "gpu_model": "a100", "mpi": "srun"}
    line = sbatch_line(res, threads=32)
    for option in ("--nodes=2", "--ntasks-per-node=4", "--cpus-per-task=8", "--gpus=a100:8", "-p a100",
                   "--mem 256000"):
        assert option in line, (option, line)
    assert "--ntasks-per-gpu" not in line and "--gres" not in line and "--cpus-per-gpu" not in line
    # fine-tuning: the same keys, its CPUs per task from the rule's threads (num_workers 4)
    ft = found["finetune"]
    assert {k: ft[k] for k in ("nodes", "tasks_per_node", "cpus_per_task", "gpu", "mpi")} == {
        "nodes": "2", "tasks_per_node": "2", "cpus_per_task": "2", "gpu": "4", "mpi": "srun"}


def test_paper_config_on_one_node_requests_what_it_always_did(tmp_path):
    found = dry_run_resources(tmp_path)
    res, ft = found["pretrain"], found["finetune"]
    assert res["gpu"] == "4" and not {"nodes", "tasks_per_node", "cpus_per_task", "mpi"} & set(res)
    line = sbatch_line(res, threads=32)
    assert "--gpus=a100:4" in line and "--cpus-per-gpu=8" in line and "--nodes" not in line
    assert ft["gpu"] == "1" and "mpi" not in ft


# ----------------------------------------------------------------- a real two-node SLURM


@pytest.fixture(scope="module")
def two_node_cluster():
    """SLURM_CONF of a running two-node test cluster (started as root, stopped at the end)."""
    if not all(shutil.which(b) or Path("/usr/sbin", b).exists() for b in ("slurmctld", "slurmd", "munged", "srun")):
        pytest.skip("SLURM is not installed; install it as root with tools/install-system-deps.sh")
    if os.geteuid() != 0:
        pytest.fail(f"the two-node test cluster needs root: run `sudo {CLUSTER_SCRIPT} start` first",
                    pytrace=False)
    # munged runs as user munge: its folder must be reachable (pytest's tmp folders are root-only)
    state = Path(tempfile.mkdtemp(prefix="cinefm-slurm-2nodes-"))
    state.chmod(0o755)
    start = subprocess.run([str(CLUSTER_SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=120,
                           env=real_slurm_env())
    if start.returncode != 0:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(state)], capture_output=True, text=True)
        pytest.fail(f"{CLUSTER_SCRIPT} start failed:\n{start.stdout}\n{start.stderr}", pytrace=False)
    # The jobstep plugin drops every SLURM_* variable (SLURM_CONF too) before it runs a job's
    # command; this cluster's config is not at /etc/slurm, so the srun inside the job finds it
    # through a wrapper early on PATH (a real cluster needs none).
    bin_dir = state / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(f"#!/bin/sh\nSLURM_CONF={state / 'slurm.conf'} exec {shutil.which('srun')} \"$@\"\n")
    (bin_dir / "srun").chmod(0o755)
    try:
        yield SimpleNamespace(conf=state / "slurm.conf", bin=bin_dir)
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(state)], capture_output=True, text=True)
        shutil.rmtree(state, ignore_errors=True)


def start_pretrain(cluster, root: Path, config: dict) -> tuple[subprocess.Popen, Path]:
    """``snakemake --profile profiles/slurm <run>/last.ckpt`` in the background (its output in root/snakemake.out)."""
    root.mkdir(parents=True, exist_ok=True)
    rule_snakefile(root, config)
    env = real_slurm_env(**SNAKEMAKE_ENV, SLURM_CONF=str(cluster.conf), PATH=f"{cluster.bin}:{os.environ['PATH']}")
    target = Path(config["results"]) / "pretrain" / config["pretrain"]["run"] / "last.ckpt"
    out = root / "snakemake.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen([SNAKEMAKE, "--profile", str(PROFILE_DIR), *TEST_ONLY_FLAGS, str(target)],
                                cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return proc, out


def step_losses(metrics_csv: Path) -> pd.Series:
    table = pd.read_csv(metrics_csv)
    return table.dropna(subset=["train/loss_step"]).set_index("step")["train/loss_step"]


@pytest.fixture(scope="module")
def ddp_runs(two_node_cluster, tmp_path_factory):
    """The two srun jobs (1 node x 2 tasks, 2 nodes x 2 tasks) and the one-process reference, run side by side."""
    root = tmp_path_factory.mktemp("multinode")
    cohort = build_cohort(root)
    one = pretrain_config(cohort.results, "one_node", batch_size=2, nodes=1, devices_per_node=2, launch="srun")
    two = pretrain_config(cohort.results, "two_nodes", batch_size=1, nodes=2, devices_per_node=2)
    jobs = {"one_node": start_pretrain(two_node_cluster, root / "wf_one", one),
            "two_nodes": start_pretrain(two_node_cluster, root / "wf_two", two)}
    ref = pretrain_config(cohort.results, "reference", batch_size=GLOBAL_BATCH, devices_per_node=0)
    run_pretraining(ref, splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv, reports=cohort.reports,
                    tokenizer=cohort.tokenizer, out_dir=cohort.results / "pretrain" / "reference",
                    layout={"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}, threads=1)
    outputs = {}
    for name, (proc, out) in jobs.items():
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"{name}: snakemake ran over 600 s:\n{out.read_text()}") from None
        outputs[name] = out.read_text()
        assert proc.returncode == 0, f"{name}:\n{outputs[name]}"
    return SimpleNamespace(root=root, results=cohort.results, cohort=cohort, configs={"one_node": one, "two_nodes": two},
                           outputs=outputs)


def squeue_job(conf: Path, output: str) -> dict[str, str]:
    """What SLURM recorded for the job Snakemake submitted (nodes, tasks, node list)."""
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    out = subprocess.run(["squeue", "--states=all", "--noheader", f"--name={run_id}",
                          "-O", "NumNodes:|,NumTasks:|,NodeList:|,State:|"],
                         capture_output=True, text=True, check=True, env=real_slurm_env(SLURM_CONF=str(conf)))
    nodes, tasks, nodelist, state = (f.strip() for f in out.stdout.strip().split("|")[:4])
    return {"nodes": nodes, "tasks": tasks, "nodelist": nodelist, "state": state}


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.parametrize("run, tasks, node_names", [("one_node", 2, None), ("two_nodes", 4, {"n1", "n2"})])
def test_srun_tasks_train_one_run_with_the_loss_of_one_process_and_one_checkpoint(ddp_runs, two_node_cluster,
                                                                                run, tasks, node_names):
    log = ddp_runs.root / ("wf_one" if run == "one_node" else "wf_two") / "logs" / "pretrain" / f"{run}.log"
    # every rank logged, to its own file; rank 0 after the launcher's lines in the rule's log
    text = log.read_text()
    assert f"starting {tasks} task(s)" in text and f"task 0 of {tasks}" in text
    assert text.index("starting") < text.index("task 0 of") < text.index(f"all {tasks} task(s) finished")
    seen_nodes = set()
    for rank in range(tasks):
        own = log if rank == 0 else log.with_name(f"{log.name}.rank{rank}")
        found = re.search(rf"task {rank} of {tasks} on node (\S+)", own.read_text())
        assert found, (rank, own.read_text()[-2000:])
        seen_nodes.add(found.group(1))
        assert "DDP over the tasks on CPU" in own.read_text()
    if node_names:
        assert seen_nodes == node_names
    # the job SLURM ran: the nodes and tasks the profile asked for
    job = squeue_job(two_node_cluster.conf, ddp_runs.outputs[run])
    assert (job["nodes"], job["tasks"], job["state"]) == (str(len(node_names or {"x"})), str(tasks), "COMPLETED")
    # the loss of every step equals that of one process with the same global batch
    ours = step_losses(ddp_runs.results / "pretrain" / run / "metrics.csv")
    ref = step_losses(ddp_runs.results / "pretrain" / "reference" / "metrics.csv")
    assert len(ours) == len(ref) == 6
    assert (ours - ref).abs().max() < LOSS_ATOL, pd.concat({"ddp": ours, "one process": ref}, axis=1)
    # one checkpoint per save: rank 0 wrote last.ckpt and the epoch's periodic one, nobody a copy
    run_dir = ddp_runs.results / "pretrain" / run
    assert sorted(p.name for p in (run_dir / "state").glob("*.ckpt")) == ["last.ckpt"]
    assert sorted(p.name for p in (run_dir / "state" / "checkpoints").iterdir()) == ["epoch0000.ckpt"]
    meta = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert meta["cinefm_world_layout"]["world_size"] == tasks
    assert meta["cinefm_world_layout"]["global_batch"] == GLOBAL_BATCH


@pytest.mark.slurm
@pytest.mark.slow
def test_resume_on_another_world_size_says_so_and_rescales_the_learning_rate(ddp_runs, caplog):
    """The 2-task run's checkpoint continued by one process: epoch 2 at half the global batch."""
    cfg = dict(ddp_runs.configs["one_node"])
    cfg["pretrain"] = {**cfg["pretrain"], "epochs": 2}  # a resumable key: the same run continues
    out = ddp_runs.results / "pretrain" / "one_node_resumed"
    shutil.copytree(ddp_runs.results / "pretrain" / "one_node", out)
    lr = float(cfg["pretrain"]["lr"])
    with caplog.at_level("INFO"):
        result = run_pretraining(cfg, splits_csv=ddp_runs.cohort.splits_csv, studies_csv=ddp_runs.cohort.studies_csv,
                                 reports=ddp_runs.cohort.reports, tokenizer=ddp_runs.cohort.tokenizer, out_dir=out,
                                 layout={"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"},
                                 threads=1)
    assert result.resumed_from == out / "state" / "last.ckpt" and result.epochs == 2
    message = next(r.getMessage() for r in caplog.records if "another world size" in r.getMessage())
    assert "world size 2 (1 node(s) x 2 device(s))" in message and "world size 1 (1 node(s) x 1 device(s))" in message
    assert "global batch 4" in message and "global batch 2" in message
    ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["cinefm_world_layout"]["world_size"] == 1
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(lr / 2)
    assert read_checkpoint_meta(out / "last.ckpt")["epoch"] == 1
