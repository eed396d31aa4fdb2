import sys

import pytest

from cinefm.text.sentences import SentenceSplitter, SentenceSplitterError


@pytest.fixture(scope="module")
def split():
    return SentenceSplitter()


def test_offline_splitter_keeps_abbreviations_and_joins_bare_headers(split):
    text = ("Clinical history: Ms. [NAME] was referred by Dr. [NAME] for ?HCM.\n"
            "FINDINGS:\nLVEF 55 %. No pericardial effusion.\n\nIMPRESSION:\n1. Hypertrophic cardiomyopathy.\n"
            "2. No LGE.\n-----\n")
    assert split(text) == [
        "Clinical history: Ms. [NAME] was referred by Dr. [NAME] for ?HCM.",
        "FINDINGS: LVEF 55 %.",
        "No pericardial effusion.",
        "IMPRESSION: 1. Hypertrophic cardiomyopathy.",
        "2. No LGE.",
    ]
    assert split.backend == "pysbd"


def test_template_lines_without_full_stops_are_sentences(split):
    assert split("LVEDV 180 ml\nLVEF 33 %\nRVEF 50 %") == ["LVEDV 180 ml", "LVEF 33 %", "RVEF 50 %"]


def test_text_without_words_has_no_sentences(split):
    assert split(" \n--- \n...") == []
    assert split("") == []


def test_configured_stanza_without_the_package_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "stanza", None)  # makes `import stanza` fail
    with pytest.raises(SentenceSplitterError, match=r"text\.stanza_dir.*stanza package is not installed"):
        SentenceSplitter(tmp_path / "stanza_resources")


def test_stanza_dir_missing_or_without_a_model_says_what_to_place_where(tmp_path):
    with pytest.raises(SentenceSplitterError, match=r"text\.stanza_dir: directory not found.*stanza\.download"):
        SentenceSplitter(tmp_path / "absent")
    empty = tmp_path / "stanza_resources"
    empty.mkdir()
    with pytest.raises(SentenceSplitterError, match=r"holds no usable stanza English tokenizer.*resources\.json "
                                                    r"and en/tokenize/"):
        SentenceSplitter(empty)


def test_the_splitter_that_ran_is_named_with_its_version():
    splitter = SentenceSplitter(None)
    assert splitter.backend == "pysbd" and splitter.version == "0.3.4"
