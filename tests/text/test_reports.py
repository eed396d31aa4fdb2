import json
import re

import pandas as pd
import pytest
from transformers import BertTokenizerFast

from cinefm.privacy import PHANTOM_KEY, pseudonymize
from cinefm.text.indexed_json import IndexedReports
from cinefm.text.reports import build_reports

# PHI inside the report texts, beyond each row's own id, name and date columns.
TEXT_PHI = ["13/01/1961", "04 March 2021", "Novak", "555-201-3344", "11/30/2020", "jonas.weber",
            "July 2018", "2021-03-05", "92-year-old"]


def _all_output_text(out) -> str:
    parts = [(out / n).read_text() for n in ("reports.json", "reports.csv", "rejected.csv")]
    parts += [p.read_text() for p in (out / "tokenizer").iterdir()]
    return "\n".join(parts)


def test_no_phi_string_reaches_any_output(built, good_rows):
    out, _ = built
    text = _all_output_text(out).lower()
    phi = [s for pid, name, acc, date, _ in good_rows for s in (pid, acc, date, *name.split("^"))]
    leaked = [s for s in phi + TEXT_PHI if s.lower() in text]
    assert not leaked
    # the Windows-1252 row's name, repaired to "Café^Zoë", is scrubbed too
    assert "zoë" not in text and "zo\\u00eb" not in text


def test_study_and_patient_ids_are_the_privacy_contract_pseudonyms(built, good_rows):
    out, _ = built
    table = pd.read_csv(out / "reports.csv", dtype=str)
    assert list(table.columns) == ["patient_id", "study_id", "report_text"]
    expected = {pseudonymize(acc, PHANTOM_KEY, "study") for _, _, acc, _, _ in good_rows}
    assert expected | {pseudonymize("A10000008", PHANTOM_KEY, "study")} == set(table["study_id"])
    assert pseudonymize("40112233", PHANTOM_KEY, "patient") in set(table["patient_id"])


def test_bad_rows_are_counted_named_and_the_rest_goes_on(built):
    out, summary = built
    rejected = pd.read_csv(out / "rejected.csv")
    assert dict(zip(rejected["row"], rejected["reason"], strict=True)) == {
        5: "malformed", 6: "empty_report", 7: "duplicate", 8: "non_utf8", 9: "missing_value"}
    assert summary.rejected == {"malformed": 1, "empty_report": 1, "duplicate": 1, "non_utf8": 1,
                                "missing_value": 1}
    assert summary.studies == 5  # 4 good rows + the repaired Windows-1252 row
    assert "LVEF 61 %" in pd.read_csv(out / "reports.csv")["report_text"].iloc[-1]


def test_indexed_json_holds_sentences_and_their_token_ids(built):
    out, _ = built
    reports = IndexedReports(out / "reports.json")
    tok = BertTokenizerFast.from_pretrained(str(out / "tokenizer"), local_files_only=True)
    sid = pseudonymize("A10000002", PHANTOM_KEY, "study")
    entry = reports[sid]
    assert len(entry["sentences"]) == len(entry["input_ids"]) >= 4
    assert any("dilated cardiomyopathy" in s for s in entry["sentences"])
    for sentence, ids in zip(entry["sentences"], entry["input_ids"], strict=True):
        assert 2 < len(ids) <= 16 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        first_words = tok.decode(ids[1:4]).split()
        assert sentence.lower().startswith(first_words[0])
    assert json.loads((out / "reports.json").read_text())[sid] == entry


def test_reports_of_studies_without_images_are_dropped_and_counted(messy_csv, tmp_path):
    keep = {pseudonymize("A10000001", PHANTOM_KEY, "study")}
    summary = build_reports(messy_csv, tmp_path, PHANTOM_KEY, vocab_size=200, min_frequency=1,
                            known_studies=keep)
    assert summary.studies == 1 and summary.rejected["unknown_study"] == 4
    assert list(IndexedReports(tmp_path / "reports.json")) == sorted(keep)


def test_configured_tokenizer_is_used_and_copied_beside_the_output(built, messy_csv, tmp_path):
    out, _ = built
    summary = build_reports(messy_csv, tmp_path / "t2", PHANTOM_KEY, tokenizer_dir=str(out / "tokenizer"),
                            max_tokens=16)
    assert summary.tokenizer.startswith("loaded from")
    import json

    pipeline = json.loads((tmp_path / "t2" / "pipeline.json").read_text())
    assert pipeline["splitter"] == "pysbd" and pipeline["splitter_version"] == "0.3.4"
    assert pipeline["tokenizer"] == "loaded from tokenizer" and pipeline["max_tokens"] == 16
    a, b = IndexedReports(out / "reports.json"), IndexedReports(tmp_path / "t2" / "reports.json")
    sid = next(iter(a))
    assert b[sid] == a[sid]
    assert (tmp_path / "t2" / "tokenizer" / "vocab.txt").read_text() == (out / "tokenizer" / "vocab.txt").read_text()


def test_cli_runs_the_stage(messy_csv, tmp_path, capsys):
    from cinefm.cli import main

    assert main(["reports", "--reports", str(messy_csv), "--out", str(tmp_path), "--phantom"]) == 0
    assert re.search(r"^5 studies", capsys.readouterr().out)
    assert len(IndexedReports(tmp_path / "reports.json")) == 5


def test_real_data_without_a_key_is_refused(messy_csv, tmp_path, monkeypatch):
    from cinefm.cli import main
    from cinefm.privacy import PrivacyError

    monkeypatch.delenv("CINEFM_PSEUDONYM_KEY", raising=False)
    with pytest.raises(PrivacyError, match="CINEFM_PSEUDONYM_KEY"):
        main(["reports", "--reports", str(messy_csv), "--out", str(tmp_path)])
    assert not (tmp_path / "reports.json").exists()
