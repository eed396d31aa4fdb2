"""Agreement with R pROC to 1e-6 on generated data sets (ties, both directions, small, imbalanced).

One Rscript process per module runs tests/stats/proc_reference.R over every data set;
the module skips only when Rscript or the pROC package is absent.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinefm.stats import delong_test, operating_points, roc_auc_ci, roc_curve

TOL = 1e-6


@functools.cache
def proc_missing_reason() -> str | None:
    """Why R pROC cannot be used here, or None when ``Rscript`` with pROC works."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "Rscript not on PATH (install Debian r-base-core r-cran-proc to compare with pROC)"
    res = subprocess.run([rscript, "-e", "library(pROC)"], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        return "R package pROC not installed (Debian r-cran-proc): " + res.stderr.strip()[-200:]
    return None


pytestmark = pytest.mark.skipif(proc_missing_reason() is not None, reason=str(proc_missing_reason()))


def _datasets() -> dict[str, dict]:
    """name -> {y, a, b, direction[, yb]}; b rates the same samples unless yb is given."""
    rng = np.random.default_rng(20240611)
    out: dict[str, dict] = {}

    def add(name, y, a, b, direction="<", yb=None):
        out[name] = dict(y=np.asarray(y, float), a=np.asarray(a, float), b=np.asarray(b, float),
                         direction=direction, yb=None if yb is None else np.asarray(yb, float))

    y = np.r_[np.zeros(50), np.ones(50)]
    a = rng.normal(size=100) + 0.8 * y
    add("normal_50_50", y, a, 0.6 * a + rng.normal(size=100) + 0.3 * y)
    y = np.r_[np.zeros(30), np.ones(20)]
    add("ratings_ties", y, np.clip(np.round(rng.normal(2.5 + y, 1.2)), 1, 5),
        np.clip(np.round(rng.normal(2.8 + 0.5 * y, 1.0)), 1, 5))
    y = rng.permutation(np.r_[np.zeros(40), np.ones(35)])
    a = np.round(rng.normal(-y, 1.0), 1)
    b = np.round(a + rng.normal(0, 0.7, len(y)), 1)
    add("reversed_auto", y, a, b, "auto")
    add("reversed_explicit", y, a, b, ">")
    add("small_5_5", [0, 0, 0, 0, 0, 1, 1, 1, 1, 1], [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.35, 0.8, 0.7],
        [0.2, 0.2, 0.3, 0.9, 0.5, 0.6, 0.6, 0.3, 0.1, 0.8])
    y = np.r_[np.zeros(200), np.ones(7)]
    a = np.round(rng.normal(0.9 * y, 1.0), 1)
    add("imbalanced_200_7", y, a, np.round(a + rng.normal(0, 0.8, len(y)), 1), "auto")
    y = rng.permutation(np.r_[np.zeros(25), np.ones(25)])
    add("tied_across_classes", y, rng.choice([0.0, 0.5, 1.0], 50, p=[0.4, 0.3, 0.3]) + 0.5 * y * (rng.random(50) < 0.3),
        rng.choice([0.0, 1.0], 50))
    y = np.r_[np.zeros(12), np.ones(9)]
    add("constant_score", y, np.full(21, 0.3), rng.normal(size=21) + y)
    add("perfect_separation", y, y * 2 + rng.random(21), rng.normal(size=21) + y)
    add("below_chance", y, rng.normal(size=21) - 1.5 * y, rng.normal(size=21))
    one = 1.0
    up = np.nextafter(one, 2.0)
    y = np.r_[np.zeros(6), np.ones(6)]
    add("adjacent_doubles_and_huge", y, [one, up, one, 0.5, 1e300, -1e300, up, up, 1e300, 1.7e308, one, 2.0],
        [-1.7e308, 1e-300, 0, 0, 1, 2, 1e-300, 3, 3, 2, 1.7e308, 1], "<")
    add("adjacent_doubles_reversed", y, [2.0, up, one, up, -1e300, 1e300, one, one, 0.5, -1.7e308, up, 0.25],
        [1, 2, 1e-300, 0, 0, 1, 1e-300, -3, 3, -2, -1.7e308, 1], ">")
    y = np.r_[np.zeros(30), np.ones(30)]
    a = rng.normal(size=60) + y
    add("identical_curves", y, a, a.copy())
    add("monotone_transform", y, a, np.exp(a))
    ya, yb = np.r_[np.zeros(25), np.ones(15)], np.r_[np.zeros(40), np.ones(20)]
    add("independent_samples", ya, rng.normal(size=40) + ya, rng.normal(size=60) + 0.5 * yb, "<", yb=yb)
    return out


DATASETS = _datasets()


@pytest.fixture(scope="module")
def proc(tmp_path_factory) -> dict[str, dict[str, np.ndarray | list[str]]]:
    """pROC's numbers for every data set: {dataset: {key: values}} from one Rscript run."""
    d: Path = tmp_path_factory.mktemp("proc")
    rows = []
    for name, ds in DATASETS.items():
        for v in ("y", "a", "b", "yb"):
            if ds[v] is not None:
                ds[v].astype("<f8").tofile(d / f"{name}_{v}.f64")
        rows.append({"name": name, "direction": ds["direction"], "independent": int(ds["yb"] is not None)})
    pd.DataFrame(rows).to_csv(d / "manifest.csv", index=False)
    script = Path(__file__).with_name("proc_reference.R")
    res = subprocess.run(["Rscript", str(script), str(d)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{script.name} failed ({proc_missing_reason()}):\n{res.stderr[-3000:]}"
    table = pd.read_csv(d / "proc.tsv", sep="\t", header=None, names=["dataset", "key", "i", "value"],
                        dtype={"value": str}, keep_default_na=False)
    out: dict = defaultdict(dict)
    for (ds, key), g in table.groupby(["dataset", "key"], sort=False):
        vals = g.sort_values("i")["value"].tolist()
        out[ds][key] = vals if key.endswith("direction") else np.array([float(v) for v in vals])
    return out


def _b_labels(ds):
    return ds["y"] if ds["yb"] is None else ds["yb"]


@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("which", ["a", "b"])
def test_auc_variance_and_delong_ci_match_proc(proc, name, which):
    ds, ref = DATASETS[name], proc[name]
    y = ds["y"] if which == "a" else _b_labels(ds)
    for level, key in ((0.95, "ci"), (0.9, "ci90")):
        r = roc_auc_ci(y, ds[which], level=level, direction=ds["direction"])
        assert r.direction == ref[f"{which}_direction"][0]
        assert r.auc == pytest.approx(ref[f"{which}_auc"][0], abs=TOL)
        assert r.auc == pytest.approx(ref[f"{which}_{key}"][1], abs=TOL)
        low, high = ref[f"{which}_{key}"][[0, 2]]
        assert r.ci_low == pytest.approx(low, abs=TOL, nan_ok=True)
        assert r.ci_high == pytest.approx(high, abs=TOL, nan_ok=True)
    assert r.variance == pytest.approx(ref[f"{which}_var"][0], abs=TOL)


@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("which", ["a", "b"])
def test_roc_coordinates_and_operating_points_match_proc(proc, name, which):
    ds, ref = DATASETS[name], proc[name]
    y = ds["y"] if which == "a" else _b_labels(ds)
    c = roc_curve(y, ds[which], direction=ds["direction"])
    np.testing.assert_array_equal(c.threshold, ref[f"{which}_thr"])  # exactly pROC's doubles
    np.testing.assert_allclose(c.sensitivity, ref[f"{which}_se"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(c.specificity, ref[f"{which}_sp"], rtol=0, atol=1e-15)
    ops = operating_points(y, ds[which], direction=ds["direction"])
    assert ops.loc["youden", "threshold"] == ref[f"{which}_best_thr"][0]  # first of pROC's tied rows
    assert ops.loc["sensitivity_0.9", "threshold"] == ref[f"{which}_sens90_thr"][0]
    assert ops.loc["specificity_0.9", "threshold"] == ref[f"{which}_spec90_thr"][0]


@pytest.mark.parametrize("name", [n for n, d in DATASETS.items() if d["yb"] is None])
def test_paired_delong_test_matches_proc(proc, name):
    ds, ref = DATASETS[name], proc[name]
    for level, key in ((0.95, "paired_ci"), (0.9, "paired_ci90")):
        t = delong_test(ds["y"], ds["a"], ds["b"], paired=True, level=level, direction=ds["direction"])
        assert t.statistic == pytest.approx(ref["paired_stat"][0], abs=TOL)
        assert t.p_value == pytest.approx(ref["paired_p"][0], abs=TOL)
        assert (t.ci_low, t.ci_high) == pytest.approx(tuple(ref[key]), abs=TOL)


@pytest.mark.parametrize("name", list(DATASETS))
def test_unpaired_delong_test_matches_proc(proc, name):
    ds, ref = DATASETS[name], proc[name]
    t = delong_test(ds["y"], ds["a"], ds["b"], paired=False, direction=ds["direction"], y_true_b=ds["yb"])
    ref_p = ref["unpaired_p"][0]
    if np.isnan(ref_p):  # pROC: 0/0 when both curves have zero variance and equal AUCs
        assert (t.statistic, t.p_value) == (0.0, 1.0)
        return
    assert t.statistic == pytest.approx(ref["unpaired_stat"][0], abs=TOL)
    assert t.df == pytest.approx(ref["unpaired_df"][0], rel=1e-9)
    assert t.p_value == pytest.approx(ref_p, abs=TOL)


def test_vectorised_columns_with_unknown_labels_match_proc_per_data_set(proc):
    """All data sets as columns of one (n, K) call, padded with NaN labels, give pROC's numbers."""
    names = [n for n, d in DATASETS.items() if d["yb"] is None and d["direction"] != "auto"]
    n = max(len(DATASETS[k]["y"]) for k in names)
    y = np.full((n, len(names)), np.nan)
    sa, sb = np.full_like(y, np.nan), np.full_like(y, np.nan)  # NaN scores allowed where label unknown
    signs = np.array([1.0 if DATASETS[k]["direction"] == "<" else -1.0 for k in names])
    for j, k in enumerate(names):
        ds = DATASETS[k]
        y[: len(ds["y"]), j], sa[: len(ds["y"]), j], sb[: len(ds["y"]), j] = ds["y"], ds["a"], ds["b"]
    r = roc_auc_ci(y, sa * signs)  # ">" curves as "<" on the negated score
    t = delong_test(y, sa * signs, sb * signs)
    for j, k in enumerate(names):
        ref = proc[k]
        assert r.auc[j] == pytest.approx(ref["a_auc"][0], abs=TOL), k
        assert r.variance[j] == pytest.approx(ref["a_var"][0], abs=TOL), k
        assert t.statistic[j] == pytest.approx(ref["paired_stat"][0], abs=TOL), k
        assert t.p_value[j] == pytest.approx(ref["paired_p"][0], abs=TOL), k


def test_equal_curves_give_z_zero_and_p_one_as_proc(proc):
    for name in ("identical_curves", "monotone_transform"):
        ref = proc[name]
        assert ref["paired_stat"][0] == 0 and ref["paired_p"][0] == 1
        t = delong_test(DATASETS[name]["y"], DATASETS[name]["a"], DATASETS[name]["b"])
        assert (t.statistic, t.p_value, t.ci_low, t.ci_high) == (0.0, 1.0, 0.0, 0.0)
