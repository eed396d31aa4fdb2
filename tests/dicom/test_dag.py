"""The ingest sub-DAG: its job count follows ingest.shards, never the cohort, and dry-runs fast."""

import re
import resource
import subprocess
import sys
from pathlib import Path

import yaml

from cinefm.config import REPO_ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _job_counts(out: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(ingest_\w+)\s+(\d+)$", out, flags=re.M)}


def test_job_count_depends_on_shards_only(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    (root / "reports.csv").write_text("patient_id,accession_number,report_text\n")
    cfg = {
        "results": str(tmp_path / "results"),
        "cohort": {"kind": "dicom", "name": "site", "dicom_root": str(root), "reports_csv": str(root / "reports.csv")},
        "ingest": {"shards": 300, "frame_size": 224, "views": "config/views.yaml", "min_frames": 10,
                   "intensity_percentiles": [0.5, 99.5], "id_map": str(tmp_path / "secure" / "id_map.csv")},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cpu0 = _children_cpu()
    proc = subprocess.run([SNAKEMAKE, "-n", "--cores", "2", "--configfile", "config/config.yaml", str(path),
                           "--", "ingest_flow"], cwd=REPO_ROOT, capture_output=True, text=True)
    cpu = _children_cpu() - cpu0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts == {"ingest_list": 1, "ingest_scan": 300, "ingest_merge": 1, "ingest_extract": 300,
                      "ingest_flow": 1}
    # CPU time, not wall time: the shared test machine may be loaded
    assert cpu < 20, f"dry-run of a 300-shard DAG took {cpu:.1f} s of CPU"
