"""``cinefm export`` + ``cinefm predict`` on real phantom DICOM: the run's own test predictions come
back from the DICOM, bad inputs are reported with reasons, reruns resume, bad folders are refused,
no PHI leaves ingestion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cinefm.cli import main
from cinefm.inference import folder as mf
from cinefm.inference.folder import ModelFolderError, load_model_folder
from cinefm.inference.predict import run_predict
from cinefm.stats import operating_points
from dicom.conftest import PATIENT, Series, output_text, write_single_frame_series

from .conftest import copy_studies

pytestmark = pytest.mark.slow
LVEF, DISEASE = "lvef_random_transfer_100", "disease_random_transfer_100"
ATTN = ["attn_4CH", "attn_3CH", "attn_2CH", "attn_SAX"]
NO_CINE_PHI = (PATIENT["PatientName"], PATIENT["PatientID"], PATIENT["PatientBirthDate"], "ACC-1001", "20230514")


def _patients(trained, split: str) -> set[str]:
    return set(trained.splits.loc[trained.splits["split"] == split, "patient_id"])


@pytest.fixture(scope="session")
def new_studies(trained, tmp_path_factory) -> Path:
    """The test patients' DICOM, a truncated copy of one file, a text file and a study without cine."""
    root = copy_studies(trained, _patients(trained, "test"), tmp_path_factory.mktemp("new") / "dicom")
    one = sorted(p for p in root.rglob("*") if p.is_file())[0]
    (root / "faults").mkdir()
    (root / "faults" / "truncated.dcm").write_bytes(one.read_bytes()[:-100])
    (root / "faults" / "notes.txt").write_text("scanner export notes, not an image\n")
    write_single_frame_series(root / "localizer_only", Series("localizer", slices=3, frames=1,
                                                              orient=(1, 0, 0, 0, 1, 0)))
    return root


@pytest.fixture(scope="session")
def lvef_out(trained, new_studies, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict_lvef")
    return run_predict(trained.models[LVEF], new_studies, out, device="cpu", batch_size=3, phantom=True)


@pytest.fixture(scope="session")
def disease_out(trained, new_studies, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict_disease")
    assert main(["predict", "--model", str(trained.models[DISEASE]), "--dicom-root", str(new_studies),
                 "--out", str(out), "--device", "cpu", "--phantom"]) == 0
    return out


def _run_test_rows(trained, name: str) -> pd.DataFrame:
    run = pd.read_csv(trained.runs[name] / "predictions.csv", dtype={"study_id": str})
    return run[run["split"] == "test"].set_index(["study_id", "task"]).sort_index()


@pytest.mark.parametrize("name", [LVEF, DISEASE])
def test_predict_on_the_dicom_reproduces_the_runs_test_predictions(trained, lvef_out, disease_out, name):
    out = lvef_out.out if name == LVEF else disease_out
    ours = pd.read_csv(out / "predictions.csv", dtype={"study_id": str}).set_index(["study_id", "task"]).sort_index()
    theirs = _run_test_rows(trained, name)
    assert len(theirs) == 4 * len(load_model_folder(trained.models[name]).tasks)
    assert list(ours.index) == list(theirs.index)
    np.testing.assert_allclose(ours["score"], theirs["score"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours[ATTN].fillna(-1), theirs[ATTN].fillna(-1), atol=1e-5, rtol=0)
    assert (ours["model_digest"] == load_model_folder(trained.models[name]).digest).all()
    assert ours["views"].str.contains("SAX").all() and (ours["n_clips"] >= 2).all()


def test_calls_follow_the_thresholds_chosen_on_validation(trained, disease_out, lvef_out):
    folder = load_model_folder(trained.models[DISEASE])
    run = pd.read_csv(trained.runs[DISEASE] / "predictions.csv", dtype={"study_id": str})
    val = run[(run["split"] == "val") & (run["task"] == "dcm")]
    expected = operating_points(val["target"], val["score"], sensitivity_target=0.9, specificity_target=0.9)
    got = folder.thresholds[folder.thresholds["task"] == "dcm"].set_index("point")
    np.testing.assert_allclose(got.loc[expected.index, "threshold"], expected["threshold"])
    pred = pd.read_csv(disease_out / "predictions.csv")
    for t in folder.thresholds.itertuples():
        rows = pred[pred["task"] == t.task]
        assert (rows[f"call_{t.point}"] == (rows["score"] >= t.threshold).astype(int)).all()
    lvef = lvef_out.predictions
    youden = load_model_folder(trained.models[LVEF]).thresholds.set_index("point").loc["youden"]
    assert youden["direction"] == ">" and youden["call_for"] == "heart_failure"
    assert (lvef["call_youden"] == (lvef["score"] <= youden["threshold"]).astype(int)).all()
    assert set(lvef["call_for"]) == {"heart_failure"}


def test_unreadable_non_dicom_and_no_cine_inputs_are_reported_with_reasons(lvef_out):
    out = lvef_out.out
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    assert studies["status"].value_counts().to_dict() == {"scored": 4, "excluded": 1}
    excluded = studies[studies["status"] == "excluded"].iloc[0]
    assert excluded["reason"].startswith("no_cine_view") and "not_cine" in excluded["reason"]
    files = pd.read_csv(out / "files.csv", keep_default_na=False).set_index("relpath")
    assert files.loc["faults/truncated.dcm", "status"] == "corrupt"
    assert files.loc["faults/notes.txt", "status"] == "not_dicom"
    assert (files.loc[files["status"] != "ok", "reason"] != "").all()
    flow = pd.read_csv(out / "flow.csv", keep_default_na=False)
    scoring = flow[flow["level"] == "scoring"].set_index("stage")
    assert scoring.loc["kept", "count"] == 4 and scoring.loc["excluded", "reason"] == "no_cine_view"
    page = (out / "summary.html").read_text()
    assert "4 of 5 studies" in page and "no_cine_view" in page


def test_a_rerun_scores_only_new_studies(trained, lvef_out, new_studies, tmp_path):
    root = tmp_path / "dicom"
    shutil.copytree(new_studies, root)
    out = tmp_path / "out"
    shutil.copytree(lvef_out.out, out)
    again = run_predict(trained.models[LVEF], root, out, device="cpu", phantom=True)
    assert again.n_scored_now == 0 and again.n_reused == 4
    pd.testing.assert_frame_equal(again.predictions, lvef_out.predictions, check_dtype=False)
    one_val = sorted(_patients(trained, "val"))[:1]
    copy_studies(trained, set(one_val), root)
    more = run_predict(trained.models[LVEF], root, out, device="cpu", phantom=True)
    assert more.n_scored_now == 1 and more.n_reused == 4
    assert more.predictions["study_id"].nunique() == 5


def _edited_copy(src: Path, dst: Path, name: str, edit) -> Path:
    shutil.copytree(src, dst)
    edit(dst / name)
    return dst


def _rewrite_checked(folder: Path, name: str, text: str) -> None:
    """Change a checked file and its checksum (as a newer cinefm writing that file would)."""
    (folder / name).write_text(text)
    manifest = json.loads((folder / mf.MANIFEST).read_text())
    manifest["files"][name] = mf.sha256_file(folder / name)
    manifest["digest"] = mf.folder_digest(manifest["files"])
    (folder / mf.MANIFEST).write_text(json.dumps(manifest))


def _set_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / mf.MANIFEST).read_text())
    for key, value in changes.items():
        if key == "cinefm":
            manifest["versions"]["cinefm"] = value
        else:
            manifest[key] = value
    (folder / mf.MANIFEST).write_text(json.dumps(manifest))


def test_folders_it_cannot_honour_are_refused_with_the_reason(trained, tmp_path, new_studies):
    src = trained.models[LVEF]
    cases = {
        "schema": (lambda d: _set_manifest(d, schema_version=2), "schema version 2 is unknown"),
        "major": (lambda d: _set_manifest(d, cinefm="1.0.0"), "incompatible major version"),
        "missing": (lambda d: (d / mf.THRESHOLDS).unlink(), "thresholds.csv missing"),
        "altered": (lambda d: (d / mf.WEIGHTS).write_bytes((d / mf.WEIGHTS).read_bytes()[:-4] + b"\0\0\0\0"),
                    "changed or damaged"),
    }
    for key, (edit, message) in cases.items():
        folder = tmp_path / key
        shutil.copytree(src, folder)
        edit(folder)
        with pytest.raises(ModelFolderError, match=message):
            run_predict(folder, new_studies, tmp_path / f"out_{key}", device="cpu", phantom=True)
        assert not (tmp_path / f"out_{key}" / "predictions.csv").exists()
    newer = tmp_path / "newer"
    shutil.copytree(src, newer)
    pre = yaml.safe_load((newer / mf.PREPROCESSING).read_text())
    pre["clip"]["temporal_jitter"] = 0.1
    _rewrite_checked(newer, mf.PREPROCESSING, yaml.safe_dump(pre))
    with pytest.raises(ModelFolderError, match=r"unknown setting\(s\) \['temporal_jitter'\]"):
        load_model_folder(newer)
    layout = tmp_path / "layout"
    shutil.copytree(src, layout)
    pre = yaml.safe_load((layout / mf.PREPROCESSING).read_text())
    pre["ingest"]["hdf5_schema"] = "7"
    _rewrite_checked(layout, mf.PREPROCESSING, yaml.safe_dump(pre))
    with pytest.raises(ModelFolderError, match="HDF5 layout 7"):
        load_model_folder(layout)


def test_model_folder_holds_what_the_card_promises(trained):
    folder = load_model_folder(trained.models[LVEF])
    assert folder.preprocessing["ingest"]["frame_size"] == trained.config["ingest"]["frame_size"]
    assert folder.preprocessing["clip"]["sax_fraction"] == trained.config["finetune"]["lvef"]["sax_fraction"]
    assert folder.manifest["versions"]["torch"].startswith("2.")
    card = (folder.root / mf.CARD).read_text()
    for needle in ("## Intended use", "## Known limits", "n_train_studies", "| val | heart_failure | auroc",
                   "| test | lvef | mae", "DeLong"):
        assert needle in card, needle
    recipe = yaml.safe_load((folder.root / mf.RECIPE).read_text())
    assert recipe["video"]["weights"] is None and "/" not in recipe["experiment_file"]


def test_no_phi_in_any_output(trained, lvef_out, disease_out):
    reports = pd.read_csv(trained.phantom / "reports.csv", dtype=str)
    phi = set(reports["patient_id"]) | set(reports["accession_number"]) | set(reports["exam_date"])
    phi |= {d.replace("-", "") for d in reports["exam_date"]} | set(NO_CINE_PHI) | {"Doe", "Jane"}
    phi |= {part for name in reports["patient_name"] for part in name.split() if len(part) > 3}
    phi |= set(pd.read_csv(trained.phantom / "truth.csv", dtype=str)["study_instance_uid"])
    outputs = [*lvef_out.out.rglob("*"), *disease_out.rglob("*"), *trained.models[LVEF].rglob("*"),
               *trained.models[DISEASE].rglob("*")]
    texts = {str(p): output_text(p) for p in outputs if p.is_file() and p.suffix != ".png"}
    assert len(texts) > 20
    leaks = {(name, s) for name, text in texts.items() for s in phi if s in text}
    assert not leaks


def test_export_refuses_a_config_that_no_longer_describes_the_ingestion(trained, tmp_path):
    from cinefm.config import deep_merge
    from cinefm.inference.export import ExportError, export_model

    changed = deep_merge(trained.config, {"ingest": {"frame_size": 32}})
    with pytest.raises(ExportError, match="frame_size 16, but the config says 32"):
        export_model(LVEF, changed, trained.results, tmp_path / "m")
    with pytest.raises(ExportError, match="not found; run the finetune job"):
        export_model("lvef_kinetics_transfer_100", trained.config, trained.results, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_a_study_whose_hdf5_cannot_be_read_fails_alone(trained, lvef_out, tmp_path):
    import h5py

    from cinefm.data.h5 import scan_series
    from cinefm.inference.predict import load_module, resolve_device, score_studies

    folder = load_model_folder(trained.models[LVEF])
    good = sorted((lvef_out.out / "h5").rglob("*.h5"))[0]
    with h5py.File(good) as fh:
        ids = {"patient_id": str(fh.attrs["patient_id"]), "study_id": str(fh.attrs["study_id"])}
    series = scan_series(pd.DataFrame([{**ids, "h5": str(good)}]))
    broken = tmp_path / "broken.h5"
    broken.write_bytes(good.read_bytes()[:2048])
    series = pd.concat([series, series.assign(study_id="Sbroken", h5=str(broken))], ignore_index=True)
    rows: list[dict] = []
    failures = score_studies(load_module(folder), series, folder.preprocessing["clip"], folder.tasks,
                             device=resolve_device("cpu"), batch_size=2, chunk=8, on_chunk=rows.extend)
    assert list(failures) == ["Sbroken"] and failures["Sbroken"].startswith("unreadable_h5")
    assert [r["study_id"] for r in rows] == [ids["study_id"]]
    expected = lvef_out.predictions.set_index("study_id").loc[ids["study_id"], "score"]
    assert rows[0]["score"] == pytest.approx(expected, abs=1e-5)
