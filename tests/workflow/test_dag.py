"""DAG-level checks: the default config dry-runs, a bad config fails naming the key."""

import re

import yaml

from cinefm.config import DEFAULT_CONFIG


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
    (tmp_path / "dicom").mkdir()
    (tmp_path / "reports.csv").write_text("patient_id,accession_number,report_text\n")
    over = tmp_path / "site.yaml"
    over.write_text(yaml.safe_dump({"results": str(tmp_path / "results"),
                                    "cohort": {"dicom_root": str(tmp_path / "dicom"),
                                               "reports_csv": str(tmp_path / "reports.csv")}}))
    paper = DEFAULT_CONFIG.with_name("paper.yaml")
    proc = snakemake("-n", "--cores", "2", "--configfile", str(paper), str(over), check=True)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    n_experiments = len(list(DEFAULT_CONFIG.parent.glob("experiments/*.yaml")))
    assert counts["ingest_scan"] == counts["ingest_extract"] == "256"
    assert counts["finetune"] == str(n_experiments)
    for rule in ("reports", "labels", "splits", "pretrain", "stats", "report"):
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
