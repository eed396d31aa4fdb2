"""DAG-level checks: the default config dry-runs, a bad config fails naming the key."""

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
