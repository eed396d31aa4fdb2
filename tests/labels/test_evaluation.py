"""Scoring a label backend against the hand-labelled CMR reports (dev and held-out halves)."""

import pandas as pd
import pytest

from cinefm.config import REPO_ROOT
from cinefm.labels.evaluation import evaluate_backend, read_labelled_reports, score_labels
from cinefm.labels.rules import RuleLabeler

DEV_SET = REPO_ROOT / "tests" / "labels" / "data" / "cmr_reports.txt"


def test_reader_parses_truth_lvef_and_text(tmp_path):
    path = tmp_path / "set.txt"
    path.write_text("# comment\n=== A1 dev | hcm=1 amyloidosis=? | lvef=55\nHCM.\nLine two.\n"
                    "=== A2 heldout | - | lvef=-\nNormal.\n")
    df = read_labelled_reports(path, ["hcm", "amyloidosis", "dcm"])
    assert list(df["id"]) == ["A1", "A2"] and list(df["split"]) == ["dev", "heldout"]
    assert df.loc[0, "report_text"] == "HCM.\nLine two."
    assert df.loc[0, "hcm"] == 1 and pd.isna(df.loc[0, "amyloidosis"]) and df.loc[0, "dcm"] == 0
    assert df.loc[0, "lvef"] == 55 and pd.isna(df.loc[1, "lvef"])


@pytest.mark.parametrize("text, match", [
    ("=== A1 dev | hcm=2 | lvef=-\nx\n", "bad truth item 'hcm=2'"),
    ("=== A1 dev | hcmm=1 | lvef=-\nx\n", "bad truth item 'hcmm=1'"),
    ("=== A1 dev hcm=1\nx\n", "malformed record header"),
    ("text first\n=== A1 dev | - | lvef=-\n", "text before the first"),
    ("=== A1 dev | - | lvef=-\nx\n=== A1 dev | - | lvef=-\ny\n", "duplicate record ids"),
    ("# only comments\n", "no records"),
])
def test_reader_names_the_line_and_what_is_wrong(tmp_path, text, match):
    path = tmp_path / "set.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_labelled_reports(path, ["hcm"])


def test_score_of_a_hand_computed_table():
    truth = pd.DataFrame({"id": list("abcde"), "hcm": pd.array([1, 1, 0, 0, None], dtype="Int8"),
                          "lvef": pd.array([50, None, 30, None, None], dtype="Float64")})
    pred = pd.DataFrame({"hcm": pd.array([1, 0, 1, 0, None], dtype="Int8"),
                         "lvef": pd.array([50, None, 31, 20, None], dtype="Float64")})
    s = score_labels(truth, pred, ["hcm"])
    assert s.accuracy == pytest.approx(3 / 5)
    assert s.f1["hcm"] == pytest.approx(2 / (2 + 1 + 1))  # tp 1, fp 1, fn 1
    assert s.confusion["hcm"].loc["1", "0"] == 1 and s.confusion["hcm"].loc["empty", "empty"] == 1
    assert s.lvef_exact == pytest.approx(3 / 5)
    assert list(s.errors["id"]) == ["b", "c"]


def test_the_development_set_is_large_varied_and_split(vocab):
    df = read_labelled_reports(DEV_SET, vocab.keys)
    assert len(df) >= 150 and set(df["split"]) == {"dev", "heldout"}
    assert (df["split"] == "heldout").sum() >= 75
    for d in vocab.keys:  # every disease positive, negative and hedged in both halves
        for _, half in df.groupby("split"):
            assert (half[d] == 1).sum() >= 4 and (half[d] == 0).sum() >= 40 and half[d].isna().sum() >= 1, d
    assert df["report_text"].str.contains(r"^\s*(?:Pericardium|RV|RIGHT VENTRICLE): ", regex=True).sum() >= 5


def test_rules_on_the_hand_labelled_reports(vocab):
    """Regression guard at the measured level. The held-out half (round 6, S ids) was scored
    once (benchmarks/README.md): accuracy 0.987, lowest F1 0.909 (pericardial effusion),
    LVEF read exactly in 118 of 118 — the issue's target (accuracy >= 0.98, F1 >= 0.9).
    Dev (rounds 1-5): 0.999 (three round-5 errors left)."""
    df = read_labelled_reports(DEV_SET, vocab.keys)
    scores = evaluate_backend(RuleLabeler(vocab), df, vocab.keys)
    assert scores["dev"].accuracy >= 0.995 and min(scores["dev"].f1.values()) >= 0.97
    assert scores["heldout"].accuracy >= 0.98 and min(scores["heldout"].f1.values()) >= 0.9
    assert scores["dev"].lvef_exact >= 0.99 and scores["heldout"].lvef_exact >= 0.97
