"""DAG-level checks: the default config dry-runs, a bad config fails naming the key."""

import re

import yaml

from cinefm.config import DEFAULT_CONFIG, REPO_ROOT


def test_dry_run_lists_the_pipeline(snakemake, tmp_path):
    proc = snakemake("-n", "--cores", "2", "--config", f"results={tmp_path}/results", check=True)
    out = proc.stdout + proc.stderr
    assert "phantom" in out
    assert "This was a dry-run" in out


def test_bad_config_key_fails_with_its_name(snakemake, tmp_path):
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["ingest"]["frame_sise"] = 64
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "frame_sise" in err and "ingest" in err


def test_bad_config_value_fails_with_its_path(snakemake, tmp_path):
    proc = snakemake("-n", "--cores", "1", "--config", "results=x", "--configfile", str(DEFAULT_CONFIG),
                     "--config", "cohort={kind: pacs, name: x}")
    assert proc.returncode != 0
    assert "cohort" in proc.stdout + proc.stderr


def test_paper_config_dry_runs_the_full_dag_at_paper_scale(snakemake, tmp_path):
    """The paper config on a (placeholder) real archive: every stage, 256 shards, every experiment."""
    for folder in ("dicom", "ukb", "acdc", "kaggle", "penn"):
        (tmp_path / folder).mkdir()
    (tmp_path / "reports.csv").write_text("patient_id,accession_number,report_text\n")
    (tmp_path / "lvef.csv").write_text("eid,22420-2.0\n")
    over = tmp_path / "site.yaml"
    over.write_text(yaml.safe_dump({"results": str(tmp_path / "results"),
                                    "cohort": {"dicom_root": str(tmp_path / "dicom"),
                                               "reports_csv": str(tmp_path / "reports.csv")},
                                    "external": {"ukb": {"root": str(tmp_path / "ukb"),
                                                         "lvef": str(tmp_path / "lvef.csv")},
                                                 "acdc": {"root": str(tmp_path / "acdc")},
                                                 "kaggle": {"root": str(tmp_path / "kaggle")},
                                                 # a second hospital's DICOM export (workflow/rules/sites.smk)
                                                 "sites": {"penn": {"dicom_root": str(tmp_path / "penn"),
                                                                    "reports_csv": str(tmp_path / "reports.csv"),
                                                                    "shards": 8}}}}))
    paper = DEFAULT_CONFIG.with_name("paper.yaml")
    proc = snakemake("-n", "--profile", str(REPO_ROOT / "profiles" / "slurm"), "--configfile", str(paper), str(over),
                     check=True)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    resources = dict(re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", proc.stdout, flags=re.M))
    for rule in ("finetune", "finetune_disease", "external_test"):  # GPU partitions of the profile's site block
        assert re.search(r"slurm_partition=(a100|b200),", resources[rule] + ",") and "gpu=1" in resources[rule], rule
    assert "slurm_partition=b200" in resources["external_test"]
    files = [yaml.safe_load(p.read_text()) for p in DEFAULT_CONFIG.parent.glob("experiments/*.yaml")]
    n_lvef = sum(f["task"] == "lvef" for f in files)
    n_disease = sum(f["task"] == "diseases" for f in files)
    diseases = yaml.safe_load(paper.read_text())["labels"]["diseases"]
    assert counts["ingest_scan"] == counts["ingest_extract"] == "256"
    # one model per disease, init, mode and fraction (finetune.disease.models: per_disease): the disease is a
    # wildcard of finetune_disease; the LVEF files train on the UK Biobank cohort's own split
    assert counts["finetune"] == str(n_lvef)
    assert counts["finetune_disease"] == str(n_disease * len(diseases))
    for d in diseases:
        assert re.search(rf"^    output: \S+/finetune/{d}_clip_finetune_10/best\.ckpt", proc.stdout, flags=re.M), d
    assert "finetune/disease_clip_finetune_10/" not in proc.stdout  # no multi-label model under per_disease
    # every trained model on ACDC (LVEF + its four disease groups) and on the Kaggle DSB (LVEF)
    acdc_diseases = {"dcm", "hcm", "prior_mi", "rv_dilation"} & set(diseases)
    # ... and on the second site (every task: its reports give them all)
    assert counts["external_test"] == str(n_lvef + n_disease * len(acdc_diseases) + n_lvef
                                          + n_lvef + n_disease * len(diseases))
    assert re.search(r"^    output: \S+/external_test/site_penn/amyloidosis_clip_finetune_10/predictions\.csv",
                     proc.stdout, flags=re.M)
    # the site's ingestion, reports and labels: the main cohort's rules, on the CPU partition, once per shard
    assert counts["site_ingest_scan"] == counts["site_ingest_extract"] == "8"
    for rule in ("site_ingest_list", "site_ingest_merge", "site_ingest_flow", "site_reports", "site_labels"):
        assert counts[rule] == "1" and "slurm_partition=cpu" in resources[rule], rule
    assert "site_phantom" not in counts and "site_agreement" not in counts  # a real export, no annotators
    assert re.search(r"^    output: \S+/external_test/acdc/hcm_kinetics_transfer_25/predictions\.csv", proc.stdout,
                     flags=re.M)
    assert "external_test/acdc/amyloidosis_" not in proc.stdout and "external_test/kaggle/hcm_" not in proc.stdout
    for rule in ("reports", "labels", "splits", "ukb_splits", "pretrain", "stats", "external_stats", "report"):
        assert counts[rule] == "1", rule
    assert "phantom" not in counts


def test_workflow_is_lint_clean(snakemake, tmp_path):
    proc = snakemake("--lint", "--config", f"results={tmp_path}/results")
    out = proc.stdout + proc.stderr
    assert "Lints for" not in out, out
    assert "No validator found" not in out, "config schema's $schema differs from snakemake's validator"


def test_attention_videos_of_an_encoder_without_class_token_attention_fail_naming_why(snakemake, tmp_path):
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["models"]["video"]["name"] = "r2plus1d_18"
    bad = tmp_path / "cnn.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--cores", "1", "--configfile", str(bad), "--config", f"results={tmp_path}/results")
    assert proc.returncode != 0
    assert "encoder 'r2plus1d_18' is not supported — R(2+1)D-18 is a convolutional network" in (
        proc.stdout + proc.stderr)


def test_a_paper_run_resolves_to_paper_yaml_alone(snakemake, tmp_path):
    """--configfile config/paper.yaml site.yaml is those files (merged in order, schema defaults filled),
    with no key of config/config.yaml leaking in (Snakemake merges files key by key)."""
    from cinefm.config import PAPER_CONFIG, deep_merge, flatten, validate_config

    site = {"results": str(tmp_path / "results"), "cohort": {"dicom_root": str(tmp_path / "dicom")}}
    over = tmp_path / "site.yaml"
    over.write_text(yaml.safe_dump(site))
    (tmp_path / "config").symlink_to(PAPER_CONFIG.parent)  # the repository-relative paths the config names
    snakemake("--cores", "1", "--directory", str(tmp_path), "--configfile", str(PAPER_CONFIG), str(over),
              "--", str(tmp_path / "results" / "config.yaml"), check=True)
    resolved = yaml.safe_load((tmp_path / "results" / "config.yaml").read_text())
    expected = deep_merge(yaml.safe_load(PAPER_CONFIG.read_text()), site)
    validate_config(expected)
    assert resolved == expected
    # what used to leak: the demo's EchoNet overrides (8 frames of 32 px, AdamW, 25 epochs)
    assert resolved["external"]["echonet"]["finetune"]["overrides"] == {}
    demo = flatten(yaml.safe_load(DEFAULT_CONFIG.read_text()))
    leaked = {k for k in demo if k not in flatten(expected) and k in flatten(resolved)}
    assert not leaked


def test_without_a_configfile_the_demo_config_is_loaded(snakemake, tmp_path):
    (tmp_path / "config").symlink_to(DEFAULT_CONFIG.parent)
    snakemake("--cores", "1", "--directory", str(tmp_path), "--config", f"results={tmp_path}/results",
              "--", str(tmp_path / "results" / "config.yaml"), check=True)
    resolved = yaml.safe_load((tmp_path / "results" / "config.yaml").read_text())
    assert resolved["cohort"]["kind"] == "phantom"
    assert resolved["results"] == f"{tmp_path}/results"
