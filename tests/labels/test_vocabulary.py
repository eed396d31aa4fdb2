import pytest
import yaml

from cinefm.config import ConfigError
from cinefm.labels.vocabulary import load_vocabulary


def test_project_vocabulary_covers_the_configured_diseases(vocab, labels_cfg):
    assert vocab.keys == tuple(labels_cfg["diseases"])
    assert all(d.synonyms or d.patterns for d in vocab.diseases)
    assert "{report}" in vocab.prompts.question and vocab.prompts.answer_values["uncertain"] is None


def test_disease_without_an_entry_names_the_file_and_key(labels_cfg):
    with pytest.raises(ConfigError, match=r"labels\.yaml.*myocarditis.*labels\.diseases"):
        load_vocabulary(labels_cfg["vocabulary"], ["hcm", "myocarditis"])


def test_bad_cue_list_names_its_key(labels_cfg, tmp_path):
    doc = yaml.safe_load(open(labels_cfg["vocabulary"]))
    doc["cues"]["negation"]["pre"] = "no"
    bad = tmp_path / "labels.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"cues\.negation\.pre: expected a list"):
        load_vocabulary(bad, ["hcm"])


def test_missing_vocabulary_file_names_the_config_key(tmp_path):
    with pytest.raises(ConfigError, match=r"config\.labels\.vocabulary: file not found"):
        load_vocabulary(tmp_path / "nope.yaml", ["hcm"])


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["quantity"].update(pericarditis=["trace"]), r"quantity: .*unknown keys \['pericarditis'\]"),
    (lambda d: d["diseases"]["rv_dilation"]["fields"].pop("values"), r"diseases\.rv_dilation\.fields: needs both"),
    (lambda d: d["sections"].update(known="known"), r"sections\.known: expected a list"),
    (lambda d: d["diseases"]["rv_dilation"]["subject"].pop("values"), r"diseases\.rv_dilation\.subject: needs both"),
    (lambda d: d.pop("structures"), r"structures: needed by the diseases' 'subject'"),
    (lambda d: d["structures"].append("aort(ic"), r"bad regular expression 'aort\(ic'"),
])
def test_bad_sections_fields_quantity_and_subjects_name_their_key(labels_cfg, tmp_path, edit, match):
    doc = yaml.safe_load(open(labels_cfg["vocabulary"]))
    edit(doc)
    bad = tmp_path / "labels.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=match):
        load_vocabulary(bad, ["hcm", "rv_dilation"])


def test_cue_set_names_the_file_and_its_content(labels_cfg, vocab, tmp_path):
    assert vocab.cue_set.startswith("labels.yaml@") and len(vocab.cue_set) == len("labels.yaml@") + 12
    changed = tmp_path / "labels.yaml"
    changed.write_text(open(labels_cfg["vocabulary"]).read() + "\n# edited\n")
    assert load_vocabulary(changed, list(vocab.keys)).cue_set != vocab.cue_set
    assert vocab.sections.impression_overrides and "known" in vocab.sections.known

