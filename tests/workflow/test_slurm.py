"""profiles/slurm against a real single-node SLURM (started by the `slurm_cluster` fixture).

The shipped profile is used as is; only the two settings a cluster without an
accounting database needs are added on the command line (status via squeue,
first status check after 2 s instead of 40 s). A tiny self-contained workflow
with rules named like the project's GPU rules checks placement, failure
reporting and partial reruns; the project's whole phantom DAG (tiny config, as in
test_full_run.py) then runs through sbatch to the report, and deleting one
fine-tuning output reruns exactly that job and the stats. Pure tests at the top
check the profile's YAML (and what Snakemake resolves from it) without SLURM.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cinefm.config import REPO_ROOT

from .conftest import SNAKEMAKE, SNAKEMAKE_ENV, real_slurm_env
from .tiny_config import (
    EXPERIMENTS,
    FULL_RUN_RULES,
    RERUN_EXPERIMENT,
    tiny_config,
    write_tiny_config,
)

PROFILE_DIR = REPO_ROOT / "profiles" / "slurm"
PROFILE = PROFILE_DIR / "config.yaml"
RULE_FILES = sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk"))
# What a test cluster without accounting needs on top of the shipped profile.
TEST_ONLY_FLAGS = ("--slurm-status-command", "squeue",
                   "--slurm-init-seconds-before-status-checks", "2")
# gpu_rules_of_workflow(): the GPU count of a training rule comes from its config section
# (cinefm.cluster.training_resources: nodes, devices_per_node).
TRAINING = -1


def load_profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def gpu_rules_of_workflow() -> dict[str, int | None]:
    """Rules of workflow/rules/*.smk that declare `gpu=` in resources → the count, None if computed,
    TRAINING for the training rules (their count: the config's devices_per_node)."""
    found: dict[str, int | None] = {}
    for path in RULE_FILES:
        rule_head = r"(?:rule|checkpoint)\s+(\w+)\s*:|use rule \w+ as (\w+) with:"
        split_at = r"^\s*(?=(?:rule|checkpoint)\s+\w+\s*:|use rule \w+ as \w+ with:)"
        blocks = re.split(split_at, path.read_text(), flags=re.M)
        for block in blocks:
            head = re.match(rule_head, block)
            gpu = re.search(r"^\s+gpu\s*=\s*(.+?),?\s*$", block, flags=re.M)
            if head and gpu:
                value = gpu.group(1)
                found[head.group(1) or head.group(2)] = int(value) if value.isdigit() else None
            elif head and "training_resources(" in block:  # gpu (and nodes ...) from the config
                found[head.group(1) or head.group(2)] = TRAINING
    return found


# --------------------------------------------------------------------- pure


def test_profile_places_gpu_rules_on_gpu_partitions_without_gres():
    prof = load_profile()
    site = prof["cinefm-site"]
    assert prof["executor"] == "slurm"
    default = prof["default-resources"]
    assert default["slurm_partition"] == site["cpu_partition"]
    assert default["slurm_account"] == site["account"]
    assert default["mem_mb"] > 0 and default["runtime"] > 0
    sr = prof["set-resources"]
    expected = {
        "pretrain": (site["a100_partition"], site["a100_model"], None),  # count: the config's
        "finetune": (site["a100_partition"], site["a100_model"], None),
        "finetune_disease": (site["a100_partition"], site["a100_model"], None),
        "external_test": (site["b200_partition"], site["b200_model"], 1),
        "echonet_finetune": (site["b200_partition"], site["b200_model"], 1),
        "attention_videos": (site["a100_partition"], site["a100_model"], 1),
    }
    for rule, (partition, model, gpus) in expected.items():
        assert (sr[rule]["slurm_partition"], sr[rule]["gpu_model"], sr[rule].get("gpu")) == (
            partition, model, gpus), rule
        assert sr[rule]["cpus_per_gpu"] >= 1
    # the recipe's pitfall: `gres` next to `gpu` makes sbatch reject the job
    assert all("gres" not in res for res in [default, *sr.values()])


def test_every_gpu_rule_of_the_workflow_is_placed_on_a_gpu_partition():
    prof = load_profile()
    cpu = prof["default-resources"]["slurm_partition"]
    for rule, gpus in gpu_rules_of_workflow().items():
        res = prof["set-resources"].get(rule)
        assert res is not None, (
            f"rule {rule} declares gpu but profiles/slurm/config.yaml has no set-resources entry "
            "for it: add one (slurm_partition, gpu_model, gpu, cpus_per_gpu)")
        assert res["slurm_partition"] != cpu, rule
        count = res.get("gpu", gpus)  # the profile's count wins over the rule's
        if count == TRAINING:
            # devices_per_node of the shipped configs: at least 1, so --gpus=<model>:<n> is valid
            section = "pretrain" if rule == "pretrain" else "finetune"
            for name in ("config.yaml", "paper.yaml"):
                cfg = yaml.safe_load((REPO_ROOT / "config" / name).read_text())
                assert cfg[section]["devices_per_node"] >= 1, (name, section)
            assert res.get("gpu_model"), rule
        elif count is None:
            # Computed from config, maybe 0: with gpu_model set, a 0-GPU job would ask
            # --gpus=<model>:0 and srun rejects its step ("job doesn't have GRES").
            assert "gpu_model" not in res, rule
        else:
            assert res.get("gpu_model") and count >= 1, rule


def dry_run_resources(profile_dir: Path, workdir: Path) -> dict[str, str]:
    """Dry-run the placement workflow with a profile: rule → the resources Snakemake resolved."""
    wf = write_placement_workflow(workdir)
    proc = subprocess.run([SNAKEMAKE, "-n", "--snakefile", str(wf), "--directory", str(workdir),
                           "--profile", str(profile_dir), "--forceall"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$",
                           proc.stdout, flags=re.M))


def test_snakemake_reads_the_profile_and_resolves_placement(tmp_path):
    """Dry run: Snakemake itself accepts the profile and applies set-resources (no SLURM needed)."""
    resources = dry_run_resources(PROFILE_DIR, tmp_path)
    assert "slurm_partition=a100" in resources["pretrain"] and "gpu=4" in resources["pretrain"]
    assert "gpu_model=a100" in resources["pretrain"] and "cpus_per_gpu=8" in resources["pretrain"]
    assert "slurm_partition=a100" in resources["finetune"] and "gpu=1" in resources["finetune"]
    assert "slurm_partition=b200" in resources["external_test"]
    assert "slurm_partition=cpu" in resources["stats"] and "gpu=" not in resources["stats"]


def test_renaming_a_partition_in_the_site_block_moves_the_gpu_rules(tmp_path):
    text = PROFILE.read_text()
    edited = text.replace("&a100_partition a100", "&a100_partition gpu-a100-80g", 1)
    assert edited.count("gpu-a100-80g") == 1, "the site block must name the partition once"
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(edited)
    workdir = tmp_path / "wf"
    workdir.mkdir()
    resources = dry_run_resources(profile, workdir)
    assert "slurm_partition=gpu-a100-80g" in resources["pretrain"]
    assert "gpu=4" in resources["pretrain"]  # the rule's count: the profile names no count for it
    assert "slurm_partition=gpu-a100-80g" in resources["finetune"]
    assert "slurm_partition=b200" in resources["external_test"]
    assert "slurm_partition=cpu" in resources["stats"]


def test_renaming_partitions_moves_the_projects_gpu_rules_and_nothing_else(tmp_path):
    """The project's own DAG (dry run, every job): only the site block of the profile is edited."""
    text = PROFILE.read_text()
    edited = text.replace("&a100_partition a100", "&a100_partition gpu-a100-80g", 1)
    edited = edited.replace("&cpu_partition cpu", "&cpu_partition standard", 1)
    assert edited.count("gpu-a100-80g") == 1 and edited.count("standard") == 1
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(edited)
    proc = subprocess.run([SNAKEMAKE, "-n", "--forceall", "--snakefile", str(REPO_ROOT / "Snakefile"),
                           "--directory", str(tmp_path), "--profile", str(profile),
                           "--configfile", str(write_tiny_config(tmp_path))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resources = dict(re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", proc.stdout, flags=re.M))
    assert set(resources) == FULL_RUN_RULES, sorted(resources)
    for rule, res in resources.items():
        want = "gpu-a100-80g" if rule in ("pretrain", "finetune", "attention_videos") else "standard"
        assert f"slurm_partition={want}," in res + ",", (rule, res)


# ------------------------------------------------------------ test workflow

# Each job records where it ran: partition | CUDA_VISIBLE_DEVICES | SLURM_GPUS_ON_NODE
# (Snakemake shells run with `set -u`, hence ${{VAR:-}}).
PROBE = ('echo "$SLURM_JOB_PARTITION|${{CUDA_VISIBLE_DEVICES:-}}|${{SLURM_GPUS_ON_NODE:-}}"'
         " > {output.probe}")
# The pretrain job also turns its real SLURM environment into a Lightning layout
# (as if the node's 4 fake GPUs were usable by torch).
LAYOUT = (f"{sys.executable} -c 'import json, os; from dataclasses import asdict; "
          "from cinefm.cluster import device_layout; "
          "print(json.dumps(asdict(device_layout(os.environ, {resources.gpu}, cuda_count=4))))'"
          " > {output.layout}")


def write_placement_workflow(root: Path) -> Path:
    """A Snakefile with the project's GPU rule names, self-contained (includes nothing)."""
    text = textwrap.dedent(f"""\
        rule all:
            input: "stats.txt", "external_test.txt"

        rule pretrain:
            output: probe="pretrain.txt", layout="pretrain_layout.json"
            threads: 1
            resources: gpu=4, mem_mb=200, runtime=5
            shell: {PROBE + " && " + LAYOUT!r}

        rule finetune:
            input: "pretrain.txt"
            output: probe="finetune.txt"
            threads: 1
            resources: gpu=1, mem_mb=200, runtime=5
            shell: {PROBE!r}

        rule external_test:
            input: "pretrain.txt"
            output: probe="external_test.txt"
            threads: 1
            resources: gpu=1, mem_mb=200, runtime=5
            shell: {PROBE!r}

        rule stats:
            input: "finetune.txt"
            output: probe="stats.txt"
            threads: 1
            resources: mem_mb=200, runtime=5
            shell: {PROBE!r}

        rule fails:
            output: "fails.txt"
            log: "logs/fails.log"
            threads: 1
            resources: mem_mb=200, runtime=5
            shell: 'echo "boom: deliberate failure" > {{log}}; exit 3'
        """)
    path = root / "Snakefile"
    path.write_text(text)
    return path


@dataclass(frozen=True)
class SlurmJob:
    jobid: str
    rule: str
    wildcards: str  # the job's wildcard values joined by "_" ("" without wildcards)
    partition: str
    tres: str
    state: str


@dataclass(frozen=True)
class SlurmRun:
    returncode: int
    output: str  # Snakemake's stdout + stderr
    run_id: str
    jobs: tuple[SlurmJob, ...]

    def job(self, rule: str) -> SlurmJob:
        (match,) = [j for j in self.jobs if j.rule == rule]
        return match


def squeue_jobs(run_id: str) -> tuple[SlurmJob, ...]:
    """Jobs SLURM knows under this Snakemake run (job name = run id; comment = rule_<name>)."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", f"--name={run_id}",
         "-O", "JobID:|,Comment:|,Partition:|,tres-per-job:|,State:|"],
        capture_output=True, text=True, check=True, env=real_slurm_env()).stdout
    jobs = []
    for line in out.splitlines():
        jobid, comment, partition, tres, state = (f.strip() for f in line.split("|")[:5])
        rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
        jobs.append(SlurmJob(jobid, rule, wildcards, partition, tres, state))
    return tuple(jobs)


class SlurmInvocation:
    """`snakemake --profile profiles/slurm` started in the background; `wait()` gives the SlurmRun.

    Runs overlap well: most of their time is spent waiting between status checks.
    """

    def __init__(self, snakefile: Path, workdir: Path, *args: str, name: str = "snakemake"):
        cmd = [SNAKEMAKE, "--snakefile", str(snakefile), "--directory", str(workdir),
               "--profile", str(PROFILE_DIR), *TEST_ONLY_FLAGS, *args]
        env = real_slurm_env(**SNAKEMAKE_ENV)
        self.log = workdir / f"{name}.out"
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=fh, stderr=subprocess.STDOUT,
                                         env=env)

    def wait(self, timeout: float = 300) -> SlurmRun:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"snakemake ran over {timeout}s:\n{self.log.read_text()}") from None
        output = self.log.read_text()
        found = re.search(r"SLURM run ID: (\S+)", output)
        assert found, f"no SLURM run started:\n{output}"
        return SlurmRun(self.proc.returncode, output, found.group(1), squeue_jobs(found.group(1)))


# The whole phantom DAG (tests/workflow/tiny_config.py) through sbatch: the shipped
# profile as is, so the GPU rules go to its GPU partitions (CPU torch there: the
# jobs train on CPU and say so). ~12 levels; each costs a job start plus the
# plugin's status-check backoff (2 s, then +10 s per check without a finished job).
FULL_DAG_TIMEOUT = 900


@pytest.fixture(scope="module")
def full_dag_launch(slurm_cluster, tmp_path_factory) -> tuple[Path, SlurmInvocation]:
    root = tmp_path_factory.mktemp("slurm_full_dag")
    return root, SlurmInvocation(REPO_ROOT / "Snakefile", root, "--configfile",
                                 str(write_tiny_config(root)), name="full")


@pytest.fixture(scope="module")
def full_dag_run(full_dag_launch) -> tuple[Path, SlurmRun]:
    root, launch = full_dag_launch
    return root, launch.wait(timeout=FULL_DAG_TIMEOUT)


@pytest.fixture(scope="module")
def full_dag_rerun(full_dag_run) -> tuple[Path, SlurmRun]:
    """One fine-tuning output deleted, then the stats target (rule all_stats) asked for."""
    root, first = full_dag_run
    assert first.returncode == 0, first.output
    (root / "results" / "finetune" / RERUN_EXPERIMENT / "predictions.csv").unlink()
    return root, SlurmInvocation(REPO_ROOT / "Snakefile", root, "--configfile", str(root / "config.yaml"),
                                 "--", "all_stats", name="rerun_stats").wait()


@pytest.fixture(scope="module")
def placement_run(slurm_cluster, full_dag_launch, tmp_path_factory) -> tuple[Path, SlurmRun]:
    """The test workflow run once through sbatch: every rule, `fails` included (keep-going).

    Asks for `full_dag_launch` so that the project's DAG runs alongside.
    """
    root = tmp_path_factory.mktemp("slurm_wf")
    wf = write_placement_workflow(root)
    return root, SlurmInvocation(wf, root, "all", "fails.txt", name="first").wait()


@pytest.fixture(scope="module")
def rerun(placement_run) -> tuple[Path, SlurmRun, dict[str, float]]:
    """Ask for the stats target again with the fine-tuning rule forced (the issue's example).

    (A deleted intermediate output alone triggers nothing while the stats output
    exists: Snakemake's rule; name the file as a target or use --forcerun.)
    """
    root, first = placement_run
    assert (root / "stats.txt").exists(), first.output
    before = {p.name: p.stat().st_mtime for p in root.glob("*.txt")}
    run = SlurmInvocation(root / "Snakefile", root, "stats.txt", "--forcerun", "finetune",
                          name="rerun").wait()
    return root, run, before


def read_probe(path: Path) -> tuple[str, list[str], str]:
    partition, visible, gpus_on_node = path.read_text().strip().split("|")
    return partition, [d for d in visible.split(",") if d], gpus_on_node


# ----------------------------------------------------------- SLURM tests


@pytest.mark.slurm
@pytest.mark.slow
def test_gpu_rules_run_on_the_partitions_and_gpu_counts_the_profile_names(placement_run):
    root, run = placement_run
    assert read_probe(root / "pretrain.txt")[0] == "a100"
    assert len(read_probe(root / "pretrain.txt")[1]) == 4
    assert read_probe(root / "pretrain.txt")[2] == "4"
    assert read_probe(root / "finetune.txt")[0] == "a100"
    assert read_probe(root / "finetune.txt")[2] == "1"
    assert read_probe(root / "external_test.txt")[0] == "b200"
    assert read_probe(root / "external_test.txt")[2] == "1"
    assert read_probe(root / "stats.txt") == ("cpu", [], "")
    # what SLURM itself recorded for each sbatch submission
    assert (run.job("pretrain").partition, run.job("pretrain").tres) == ("a100", "gres:gpu:a100:4")
    assert (run.job("finetune").partition, run.job("finetune").tres) == ("a100", "gres:gpu:a100:1")
    assert (run.job("external_test").partition, run.job("external_test").tres) == (
        "b200", "gres:gpu:b200:1")
    assert run.job("stats").partition == "cpu"
    assert {j.state for j in run.jobs if j.rule != "fails"} == {"COMPLETED"}


@pytest.mark.slurm
@pytest.mark.slow
def test_pretrain_job_turns_its_allocation_into_a_ddp_layout(placement_run):
    root, _ = placement_run
    layout = json.loads((root / "pretrain_layout.json").read_text())
    assert layout == {"accelerator": "gpu", "devices": 4, "num_nodes": 1, "strategy": "ddp",
                      "launcher": "lightning"}


@pytest.mark.slurm
@pytest.mark.slow
def test_failing_job_is_reported_with_its_rule_and_log(placement_run):
    root, run = placement_run
    assert run.returncode != 0
    assert "Error in rule fails" in run.output
    assert "logs/fails.log" in run.output
    assert "boom: deliberate failure" in run.output  # show-failed-logs prints the rule's log
    assert run.job("fails").state == "FAILED"
    assert not (root / "fails.txt").exists()
    # keep-going: the failure did not stop the independent jobs
    assert (root / "stats.txt").exists() and (root / "external_test.txt").exists()


@pytest.mark.slurm
@pytest.mark.slow
def test_partial_rerun_submits_only_the_missing_output_and_its_dependents(rerun):
    root, run, before = rerun
    assert run.returncode == 0, run.output
    assert sorted(j.rule for j in run.jobs) == ["finetune", "stats"]
    after = {p.name: p.stat().st_mtime for p in root.glob("*.txt")}
    assert after["pretrain.txt"] == before["pretrain.txt"]
    assert after["external_test.txt"] == before["external_test.txt"]
    assert after["finetune.txt"] > before["finetune.txt"]
    assert after["stats.txt"] > before["stats.txt"]


# ------------------------------------------------------ the project's DAG


def expected_partitions() -> dict[str, tuple[str, str]]:
    """GPU rule -> (partition, tres) the shipped profile and the tiny config ask for (others: the CPU partition)."""
    site = load_profile()["cinefm-site"]
    cfg = tiny_config(Path("results"))  # the counts: the config's devices_per_node (one node)
    placed = {
        rule: (site["a100_partition"], f"gres:gpu:{site['a100_model']}:{cfg[rule]['devices_per_node']}")
        for rule in ("pretrain", "finetune")
    }
    # the profile's own count for the heat-map videos (one job per experiment of config attention)
    placed["attention_videos"] = (site["a100_partition"], f"gres:gpu:{site['a100_model']}:{site['attention_gpus']}")
    return placed


@pytest.mark.slurm
@pytest.mark.slow
def test_phantom_dag_runs_through_sbatch_to_the_report(full_dag_run):
    root, run = full_dag_run
    assert run.returncode == 0, run.output
    # every rule of the DAG was an sbatch job (rule all only collects)
    assert {j.rule for j in run.jobs} == FULL_RUN_RULES - {"all"}, run.jobs
    assert sorted(j.wildcards for j in run.jobs if j.rule == "finetune") == sorted(EXPERIMENTS)
    assert {j.state for j in run.jobs} == {"COMPLETED"}, run.jobs
    gpu = expected_partitions()
    cpu = load_profile()["cinefm-site"]["cpu_partition"]
    for job in run.jobs:
        if job.rule in gpu:
            assert (job.partition, job.tres) == gpu[job.rule], job
        else:
            assert job.partition == cpu and "gpu" not in job.tres, job
    assert (root / "results" / "report" / "index.html").stat().st_size > 0
    assert any((root / "results" / "stats" / "figures").glob("roc_*.png"))


@pytest.mark.slurm
@pytest.mark.slow
def test_deleted_finetune_output_reruns_that_job_and_the_stats_through_sbatch(full_dag_rerun):
    root, run = full_dag_rerun
    assert run.returncode == 0, run.output
    assert sorted((j.rule, j.wildcards) for j in run.jobs) == [("finetune", RERUN_EXPERIMENT), ("stats", "")]
    assert run.job("finetune").partition == expected_partitions()["finetune"][0]
    assert (root / "results" / "finetune" / RERUN_EXPERIMENT / "predictions.csv").exists()
