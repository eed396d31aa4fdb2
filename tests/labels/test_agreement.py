import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from cinefm.labels.agreement import cohen_kappa, compare, human_raters, run_agreement, table_metrics
from cinefm.privacy import PHANTOM_KEY, pseudonymize


def test_kappa_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 2, 50)
        b = np.where(rng.random(50) < 0.8, a, 1 - a)
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_metrics_of_a_hand_computed_table():
    # tp=40 fp=10 fn=5 tn=45: po=0.85, pe=0.5*0.45+0.5*0.55=0.5 -> kappa=0.7
    m = table_metrics(40, 10, 5, 45)
    assert m["agreement"] == pytest.approx(0.85) and m["kappa"] == pytest.approx(0.7)
    assert m["sensitivity"] == pytest.approx(40 / 45) and m["specificity"] == pytest.approx(45 / 55)
    assert m["f1"] == pytest.approx(80 / 95) and m["prevalence"] == pytest.approx(0.45)
    assert np.isnan(table_metrics(0, 0, 0, 10)["kappa"])  # both constant: undefined


def test_compare_counts_unknowns_and_brackets_the_estimate():
    idx = [f"S{i}" for i in range(60)]
    rng = np.random.default_rng(1)
    ref = pd.Series(rng.integers(0, 2, 60), index=idx, dtype="Int8")
    rater = ref.where(rng.random(60) < 0.9, 1 - ref).astype("Int8")
    rater.iloc[:5] = pd.NA
    ref.iloc[5:8] = pd.NA
    row = compare(rater.iloc[:-10], ref, n_boot=500, seed=0, level=0.95)
    assert row["n_studies"] == 50 and row["n_unknown_rater"] == 5 and row["n_unknown_reference"] == 3
    assert row["n"] == 42
    for k in ("kappa", "agreement", "sensitivity", "specificity", "f1"):
        assert row[f"{k}_low"] <= row[k] <= row[f"{k}_high"]
    assert row["kappa_high"] - row["kappa_low"] > 0.05


def test_human_labels_join_by_pseudonymized_accession():
    human = pd.DataFrame({"accession_number": ["A1", "A1", "A2"], "annotator": ["A", "B", "A"],
                          "hcm": ["1", "", "0"]})
    raters = human_raters(human, ["hcm"], PHANTOM_KEY)
    sid = pseudonymize("A1", PHANTOM_KEY, "study")
    assert raters["A"].loc[sid, "hcm"] == 1 and pd.isna(raters["B"].loc[sid, "hcm"])
    with pytest.raises(ValueError, match="key"):
        human_raters(human, ["hcm"], None)
    with pytest.raises(ValueError, match="1, 0 or empty"):
        human_raters(human.assign(hcm=["yes", "1", "0"]), ["hcm"], PHANTOM_KEY)


def test_run_agreement_writes_table_and_figure(tmp_path):
    rng = np.random.default_rng(3)
    accs = [f"A{i}" for i in range(40)]
    truth = rng.integers(0, 2, (40, 2))
    labels = pd.DataFrame({"study_id": [pseudonymize(a, PHANTOM_KEY, "study") for a in accs],
                           "hcm": truth[:, 0], "dcm": truth[:, 1]})
    labels.loc[0, "hcm"] = None
    labels = labels.assign(backend="rules", model="negex+sections", cue_set="labels.yaml@0123456789ab")
    labels.to_csv(tmp_path / "labels.csv", index=False)
    rows = []
    for name, flip in (("A", 0.05), ("B", 0.15)):
        noisy = np.where(rng.random(truth.shape) < flip, 1 - truth, truth)
        rows += [{"accession_number": a, "annotator": name, "hcm": h, "dcm": d} for a, (h, d) in zip(accs, noisy, strict=True)]
    pd.DataFrame(rows).to_csv(tmp_path / "human.csv", index=False)
    df = run_agreement(tmp_path / "labels.csv", tmp_path / "human.csv", tmp_path / "agreement.csv",
                       tmp_path / "agreement.png", ["hcm", "dcm"], key=PHANTOM_KEY, n_boot=200)
    written = pd.read_csv(tmp_path / "agreement.csv")
    assert list(zip(written["rater"], written["reference"], strict=True))[:3] == [
        ("model", "A"), ("model", "B"), ("A", "B")]
    assert len(written) == 6 and set(written["disease"]) == {"hcm", "dcm"}
    hcm_a = df[(df.disease == "hcm") & (df.reference == "A") & (df.rater == "model")].iloc[0]
    assert hcm_a["n_unknown_rater"] == 1 and hcm_a["n"] == 39
    assert hcm_a["kappa"] > df[(df.disease == "hcm") & (df.rater == "model") & (df.reference == "B")]["kappa"].item()
    assert (tmp_path / "agreement.png").read_bytes()[:4] == b"\x89PNG"
    # which parser and cue set produced the labels: on the model's rows, in the table and the report
    model_rows = written[written["rater"] == "model"]
    assert set(model_rows["cue_set"]) == {"labels.yaml@0123456789ab"} and set(model_rows["model"]) == {"negex+sections"}
    assert written.loc[written["rater"] == "A", "cue_set"].isna().all()
    from cinefm.report.html import labels_section

    (tmp_path / "labels").mkdir()
    (tmp_path / "agreement.csv").rename(tmp_path / "labels" / "agreement.csv")
    body = labels_section(tmp_path, {}).body
    assert "backend <code>rules</code>" in body and "cue set <code>labels.yaml@0123456789ab</code>" in body
