"""cinefm.repro's comparisons on small files, and the report's Reproducibility section.
(The rerun of the tiny DAG itself: tests/workflow/test_repro.py.)"""

from __future__ import annotations

import pandas as pd

from cinefm import repro
from cinefm.report.html import repro_section


def test_bytes_identical_folder_and_first_differing_line(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "x.bin").write_bytes(b"\x00\x01")
    (a / "t.csv").write_text("k,v\n1,2\n3,4\n")
    (b / "t.csv").write_text("k,v\n1,2\n3,5\n")
    assert repro.compare("stats", a / "sub", b / "sub") == {"kind": "sha256", "identical": True, "difference": ""}
    row = repro.compare("stats", a / "t.csv", b / "t.csv")
    assert not row["identical"] and row["difference"] == "line 3: '3,4' vs '3,5'"
    (b / "sub" / "y.bin").write_bytes(b"")
    assert "only in the rerun ['y.bin']" in repro.compare("stats", a / "sub", b / "sub")["difference"]
    assert repro.compare("stats", a / "t.csv", tmp_path / "absent.csv")["difference"] == "not rewritten by the rerun"


def test_the_rerun_folder_is_read_as_the_original_and_the_html_repro_section_is_left_out(tmp_path):
    orig, new = tmp_path / "config.yaml", tmp_path / "new.yaml"
    run = tmp_path / "run" / "results"  # the original run's results folder, and the rerun's inside it
    orig.write_text(f"results: {run}\n")
    new.write_text(f"results: {run / 'repro' / 'work' / 'results'}\n")
    rename = (str(run / "repro" / "work" / "results").encode(), str(run).encode())
    assert repro.compare("run_config", orig, new, rename=rename)["identical"]
    assert not repro.compare("run_config", orig, new)["identical"]
    page_a, page_b = tmp_path / "a.html", tmp_path / "b.html"
    page_a.write_text('<nav><a href="#x">X</a><a href="#repro">Reproducibility</a></nav>'
                      '<section id="repro"><p>3 of 3</p></section>')
    page_b.write_text('<nav><a href="#x">X</a><a href="#repro">Reproducibility</a></nav>'
                      '<section id="repro"><p>Not checked yet</p></section>')
    assert repro.compare("report", page_a, page_b)["identical"]


def test_training_tables_compare_within_the_tolerance(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    pd.DataFrame({"step": [1, 2], "loss": [0.5, 0.25], "split": ["val", "val"]}).to_csv(a, index=False)
    pd.DataFrame({"step": [1, 2], "loss": [0.5, 0.25 + 1e-9], "split": ["val", "val"]}).to_csv(b, index=False)
    pd.DataFrame({"step": [1, 2], "loss": [0.5, 0.3], "split": ["val", "val"]}).to_csv(c, index=False)
    row = repro.compare("finetune", a, b)
    assert row["kind"] == "numbers" and row["identical"] and row["difference"].startswith("within tolerance")
    row = repro.compare("finetune", a, c)
    assert not row["identical"] and row["difference"].startswith("loss: max |difference| 0.05")
    assert repro.compare("finetune", a, a) == {"kind": "numbers", "identical": True, "difference": ""}
    # the same difference in a non-training rule: bytes
    assert repro.compare("stats", a, b)["kind"] == "sha256" and not repro.compare("stats", a, b)["identical"]


def test_report_section_shows_the_check_or_how_to_run_it(tmp_path):
    assert "Not checked yet" in repro_section(tmp_path, {}).body
    (tmp_path / "repro").mkdir()
    pd.DataFrame([{"rule": "stats", "output": "stats/auroc.csv", "kind": "sha256", "identical": True,
                   "difference": ""},
                  {"rule": "splits", "output": "splits/splits.csv", "kind": "sha256", "identical": False,
                   "difference": "line 2: 'a' vs 'b'"}]).to_csv(tmp_path / "repro" / "report.csv", index=False)
    body = repro_section(tmp_path, {}).body
    assert "1 of 2 outputs identical; <strong>1 differ</strong>" in body
    assert body.index("splits/splits.csv") < body.index("stats/auroc.csv")  # differences first


def test_training_checkpoints_compare_by_their_weights(tmp_path):
    import torch

    w = {"layer.weight": torch.ones(2, 2), "layer.steps": torch.tensor([3])}
    torch.save({"state_dict": w, "callbacks": {"best_model_path": str(tmp_path / "run" / "a")}}, tmp_path / "a.ckpt")
    torch.save({"state_dict": w, "callbacks": {"best_model_path": str(tmp_path / "run" / "repro" / "work" / "a")}}, tmp_path / "b.ckpt")
    moved = {**w, "layer.weight": torch.ones(2, 2) + 0.01}
    torch.save({"state_dict": moved}, tmp_path / "c.ckpt")
    row = repro.compare("finetune", tmp_path / "a.ckpt", tmp_path / "b.ckpt")
    assert row == {"kind": "weights", "identical": True, "difference": ""}
    row = repro.compare("finetune", tmp_path / "a.ckpt", tmp_path / "c.ckpt")
    assert not row["identical"] and row["difference"].startswith("layer.weight: max |difference| 0.01")
