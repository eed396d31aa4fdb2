"""Same seed -> same bytes whatever the worker count; another seed -> another cohort; reruns idempotent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from cinefm.phantom import generate_cohort

from .conftest import TINY_OPTS


def _digest(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    a, b, c = (tmp_path_factory.mktemp(n) for n in ("a", "b", "c"))
    generate_cohort(a, patients=2, seed=5, jobs=1, **TINY_OPTS)
    generate_cohort(b, patients=2, seed=5, jobs=2, **TINY_OPTS)
    generate_cohort(c, patients=2, seed=6, jobs=1, **TINY_OPTS)
    return a, b, c


def test_same_seed_gives_identical_bytes_for_any_job_count(tiny_runs):
    a, b, _ = tiny_runs
    da, db = _digest(a), _digest(b)
    assert len(da) > 200 and da == db


def test_another_seed_gives_another_cohort(tiny_runs):
    a, _, c = tiny_runs
    da, dc = _digest(a), _digest(c)
    common = set(da.values()) & set(dc.values())
    junk = set(pd.read_csv(a / "faults.csv").query("fault == 'not_dicom'").relpath)
    # only constant export junk (readme, empty files) may be shared
    assert all(k.removeprefix("dicom/") in junk for k, v in da.items() if v in common)
    assert len(da) > 200 and len(common) <= 3


def test_rerun_into_the_same_folder_is_idempotent_and_leaves_no_temporaries(tiny_runs, tmp_path):
    a, _, _ = tiny_runs
    generate_cohort(tmp_path, patients=1, seed=6, jobs=1, **TINY_OPTS)  # something else first
    (tmp_path / "dicom" / "stale.dcm").write_bytes(b"old")
    (tmp_path / ".phantom-tmp-99999").mkdir()  # left by a killed run
    generate_cohort(tmp_path, patients=2, seed=5, jobs=1, **TINY_OPTS)
    assert _digest(tmp_path) == _digest(a)
    assert not list(tmp_path.glob(".phantom-tmp-*"))


def test_bad_options_fail_with_the_key_named(tmp_path):
    with pytest.raises(ValueError, match="phantom.frames"):
        generate_cohort(tmp_path, patients=1, seed=1, frames=(30, 20))
    with pytest.raises(ValueError, match="phantom.patients"):
        generate_cohort(tmp_path, patients=0, seed=1)


def test_uids_of_different_parts_never_collide():
    from cinefm.phantom.writer import make_uid

    assert make_uid(7, "sop", 1, 10) != make_uid(7, "sop", 11, 0)
    uids = {make_uid(7, "sop", s, f) for s in range(13) for f in range(51)}
    assert len(uids) == 13 * 51
