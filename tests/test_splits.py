"""Patient-level splits: proportions, stability under cohort growth, leakage, train fractions."""

import pandas as pd
import pytest

from cinefm.splits import (
    FRACTION_COLUMNS,
    SPLIT_COLUMNS,
    LeakageError,
    SplitError,
    SplitFractions,
    assign_splits,
    check_leakage,
    make_splits,
    read_splits,
    train_fraction_subset,
)

PAPER = SplitFractions(pretrain=0.75, pretrain_val=0.33, downstream_train=0.5,
                       downstream_val=0.25, downstream_test=0.25)


def _studies(n_patients: int, start: int = 0, studies_per_patient: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        [(f"P{i:06d}", f"S{i:06d}_{j}") for i in range(start, start + n_patients)
         for j in range(studies_per_patient)],
        columns=["patient_id", "study_id"],
    )


@pytest.fixture(scope="module")
def big_split() -> pd.DataFrame:
    return assign_splits(_studies(10_000), "clinical", seed=2024, fractions=PAPER)


def test_proportions_on_10k_patients_are_within_3_percent(big_split):
    n = big_split["patient_id"].nunique()
    per = big_split.groupby(["stage", "split"])["patient_id"].nunique() / n
    pre = per["pretrain"].sum()
    assert abs(pre - 0.75) < 0.03
    assert abs(per["pretrain"]["val"] / pre - 0.33) < 0.03
    down = per["downstream"]
    assert abs(down["train"] / down.sum() - 0.50) < 0.03
    assert abs(down["val"] / down.sum() - 0.25) < 0.03
    assert abs(down["test"] / down.sum() - 0.25) < 0.03


def test_adding_ten_percent_new_patients_moves_no_existing_patient(big_split):
    grown = pd.concat([_studies(10_000), _studies(1_000, start=10_000)], ignore_index=True)
    again = assign_splits(grown.sample(frac=1.0, random_state=3), "clinical", seed=2024, fractions=PAPER)
    merged = big_split.merge(again, on=["patient_id", "study_id"], suffixes=("_old", "_new"))
    assert len(merged) == 10_000
    assert (merged["stage_old"] == merged["stage_new"]).all()
    assert (merged["split_old"] == merged["split_new"]).all()
    assert again["patient_id"].nunique() == 11_000


@pytest.mark.parametrize("seed", [0, 1, 7, 2024, 99991])
def test_every_study_of_a_patient_lands_on_one_side_for_any_seed(seed):
    splits = assign_splits(_studies(2_000, studies_per_patient=3), "clinical", seed, PAPER)
    sides = splits.groupby("patient_id")[["stage", "split"]].nunique()
    assert (sides == 1).all().all()
    assert splits["study_id"].is_unique
    check_leakage(splits)


def test_the_seed_changes_the_assignment():
    a = assign_splits(_studies(2_000), "c", seed=1, fractions=PAPER)
    b = assign_splits(_studies(2_000), "c", seed=2, fractions=PAPER)
    moved = (a["stage"] + a["split"] != b["stage"] + b["split"]).mean()
    assert 0.3 < moved < 0.9


def test_a_patient_on_two_sides_fails_naming_the_patient():
    table = pd.DataFrame([
        ("P1", "S1", "c", "downstream", "train"),
        ("P1", "S2", "c", "downstream", "test"),
        ("P2", "S3", "c", "pretrain", "val"),
    ], columns=SPLIT_COLUMNS)
    with pytest.raises(LeakageError, match="patient P1 .*downstream/test"):
        check_leakage(table)


def test_a_study_listed_twice_or_a_bad_stage_split_pair_fails():
    twice = pd.DataFrame([("P1", "S1", "c", "pretrain", "train"),
                          ("P1", "S1", "c", "pretrain", "train")], columns=SPLIT_COLUMNS)
    with pytest.raises(LeakageError, match="study S1"):
        check_leakage(twice)
    bad = pd.DataFrame([("P1", "S1", "c", "pretrain", "test")], columns=SPLIT_COLUMNS)
    with pytest.raises(SplitError, match="'pretrain' with split 'test'"):
        check_leakage(bad)


def test_external_cohorts_are_test_only_and_may_not_share_patients():
    ext = _studies(50, start=10_000)
    splits = assign_splits(_studies(200), "clinical", 5, PAPER, external={"penn": ext})
    penn = splits[splits["cohort"] == "penn"]
    assert len(penn) == 50
    assert set(penn["stage"]) == {"external"} and set(penn["split"]) == {"test"}
    assert set(splits.loc[splits["cohort"] == "clinical", "stage"]) == {"pretrain", "downstream"}
    shared = pd.DataFrame({"patient_id": ["P000003"], "study_id": ["EXT1"]})
    with pytest.raises(LeakageError, match="patient P000003 .*penn/external/test"):
        assign_splits(_studies(200), "clinical", 5, PAPER, external={"penn": shared})


def test_a_study_with_two_patients_is_rejected():
    table = pd.DataFrame({"patient_id": ["P1", "P2"], "study_id": ["S1", "S1"]})
    with pytest.raises(SplitError, match=r"study S1 belongs to several patients \['P1', 'P2'\]"):
        assign_splits(table, "c", 1, PAPER)


def test_downstream_fractions_must_sum_to_one():
    with pytest.raises(SplitError, match="config.splits.downstream"):
        SplitFractions(downstream_train=0.5, downstream_val=0.3, downstream_test=0.3)


def test_train_fractions_are_nested_exact_and_reproducible_from_the_seed(big_split):
    n_train = big_split.query("stage == 'downstream' and split == 'train'")["patient_id"].nunique()
    previous: set = set()
    for f in (0.1, 0.25, 0.5, 1.0):
        sub = train_fraction_subset(big_split, f, seed=17)
        patients = set(sub.studies["patient_id"])
        assert sub.seed == 17 and sub.fraction == f and sub.n_available == n_train
        assert len(patients) == sub.n_patients == round(f * n_train)
        assert previous <= patients
        assert set(sub.studies["stage"]) == {"downstream"} and set(sub.studies["split"]) == {"train"}
        previous = patients
    again = set(train_fraction_subset(big_split, 0.1, seed=17).studies["patient_id"])
    other = set(train_fraction_subset(big_split, 0.1, seed=18).studies["patient_id"])
    assert again == set(train_fraction_subset(big_split, 0.1, 17).studies["patient_id"])
    assert len(again & other) < 0.5 * len(again)


def test_make_splits_writes_splits_and_fraction_tables(tmp_path):
    studies = _studies(120, studies_per_patient=2).assign(
        h5=lambda d: "results/h5/" + d.patient_id + "/" + d.study_id + ".h5", views="4CH;SAX")
    studies.to_csv(tmp_path / "studies.csv", index=False)
    labels = studies[["study_id", "patient_id"]].iloc[:200].assign(hcm="1", lvef="55")
    labels.to_csv(tmp_path / "labels.csv", index=False)
    ext = _studies(10, start=5_000)
    ext.to_csv(tmp_path / "ext.csv", index=False)
    out, frac = tmp_path / "splits" / "splits.csv", tmp_path / "splits" / "train_fractions.csv"
    made = make_splits(tmp_path / "studies.csv", tmp_path / "labels.csv", out, frac, cohort="phantom",
                       seed=3, fractions=PAPER, train_fractions=[0.5, 1.0], fraction_seed=17,
                       external={"ukb": tmp_path / "ext.csv"})
    back = read_splits(out)
    assert list(back.columns) == SPLIT_COLUMNS
    assert len(back) == 250 and back.equals(made.astype(str))
    fractions = pd.read_csv(frac, dtype={"patient_id": str})
    assert list(fractions.columns) == FRACTION_COLUMNS
    assert set(fractions["fraction_seed"]) == {17}
    full = fractions[fractions["train_fraction"] == 1.0]
    assert set(full["study_id"]) == set(back.query("stage == 'downstream' and split == 'train'")["study_id"])
    assert set(fractions.loc[fractions["train_fraction"] == 0.5, "study_id"]) < set(full["study_id"])


def test_make_splits_leaves_out_studies_whose_extraction_failed(tmp_path):
    manifest = _studies(30).assign(h5_relpath="x.h5", status="written")
    manifest.loc[[4, 9], "status"] = "failed"
    manifest.to_csv(tmp_path / "studies.csv", index=False)
    _studies(30).to_csv(tmp_path / "labels.csv", index=False)
    splits = make_splits(tmp_path / "studies.csv", tmp_path / "labels.csv", tmp_path / "s.csv",
                         tmp_path / "f.csv", cohort="c", seed=1, fractions=PAPER, train_fractions=[1.0],
                         fraction_seed=1)
    assert len(splits) == 28 and not {"S000004_0", "S000009_0"} & set(splits["study_id"])


def test_make_splits_rejects_a_patient_mismatch_between_labels_and_manifest(tmp_path):
    _studies(5).assign(h5="x.h5").to_csv(tmp_path / "studies.csv", index=False)
    labels = _studies(5)
    labels.loc[2, "patient_id"] = "PXXX"
    labels.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(SplitError, match="study S000002_0 has patient PXXX"):
        make_splits(tmp_path / "studies.csv", tmp_path / "labels.csv", tmp_path / "s.csv",
                    tmp_path / "f.csv", cohort="c", seed=1, fractions=PAPER, train_fractions=[1.0],
                    fraction_seed=1)
    assert not (tmp_path / "s.csv").exists()


def test_reading_a_hand_edited_leaking_table_fails_naming_file_and_patient(tmp_path):
    splits = assign_splits(_studies(40, studies_per_patient=2), "c", 1, PAPER)
    pid = splits["patient_id"].iloc[0]
    first = splits.index[splits["patient_id"] == pid][0]
    splits.loc[first, ["stage", "split"]] = (
        ["downstream", "test"] if splits.loc[first, "stage"] == "pretrain" else ["pretrain", "train"])
    path = tmp_path / "splits.csv"
    splits.to_csv(path, index=False)
    with pytest.raises(LeakageError, match=f"{path}: patient {pid}"):
        read_splits(path)
