import json

import pytest
from transformers import BertTokenizerFast

from cinefm.text.tokenizer import (
    TokenizerError,
    encode_sentences,
    load_tokenizer,
    save_tokenizer,
    train_wordpiece,
)

CORPUS = [
    "No evidence of hypertrophic cardiomyopathy.",
    "Reported by Dr. [NAME] on [DATE].",
    "LVEF 55 % and no pericardial effusion.",
    "Dilated cardiomyopathy with severely impaired LV systolic function.",
] * 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tok = train_wordpiece(CORPUS, vocab_size=200, min_frequency=1)
    out = save_tokenizer(tok, tmp_path_factory.mktemp("tok") / "tokenizer")
    return tok, out


def test_trained_tokenizer_reloads_with_transformers_and_gives_the_same_ids(trained):
    tok, out = trained
    again = BertTokenizerFast.from_pretrained(str(out), local_files_only=True)
    s = "No pericardial effusion; LVEF 55 %."
    assert again(s)["input_ids"] == tok(s)["input_ids"]
    assert again.convert_ids_to_tokens(again(s)["input_ids"])[0] == "[CLS]"
    vocab = (out / "vocab.txt").read_text().splitlines()
    assert len(vocab) == len(again) and vocab[again.convert_tokens_to_ids("[SEP]")] == "[SEP]"


def test_phi_tags_are_single_tokens(trained):
    tok, _ = trained
    tokens = tok.convert_ids_to_tokens(tok("Seen by Dr. [NAME] on [DATE].")["input_ids"])
    assert "[NAME]" in tokens and "[DATE]" in tokens
    assert "name" not in tokens


def test_sentences_are_truncated_to_max_tokens_with_cls_and_sep(trained):
    tok, _ = trained
    ids = encode_sentences(tok, ["no evidence of hypertrophic cardiomyopathy " * 10, "LVEF 55 %."], max_tokens=8)
    assert len(ids[0]) == 8 and ids[0][0] == tok.cls_token_id and ids[0][-1] == tok.sep_token_id
    assert len(ids[1]) < 8
    assert encode_sentences(tok, [], 8) == []


def test_a_pretrained_style_vocab_directory_loads(tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "effusion", "pericardial", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = load_tokenizer(tmp_path)
    assert tok.convert_ids_to_tokens(tok("No pericardial effusion.")["input_ids"]) == [
        "[CLS]", "no", "pericardial", "effusion", ".", "[SEP]"]


def test_missing_tokenizer_dir_names_the_key_and_what_to_put_there(tmp_path):
    with pytest.raises(TokenizerError, match=r"text\.tokenizer_dir.*vocab\.txt"):
        load_tokenizer(tmp_path / "BiomedBERT")


def test_the_same_reports_give_the_same_vocabulary_in_every_process(tmp_path):
    """HF tokenizers' trainer walks a per-process-seeded HashMap; the vocabulary must not depend on it."""
    import subprocess
    import sys

    corpus = tmp_path / "corpus.txt"
    words = ["ventricle", "ventricular", "dilatation", "dilated", "hypertrophy", "hypertrophic", "effusion",
             "effusions", "infarction", "infarct", "amyloid", "amyloidosis", "septal", "septum", "apical", "apex"]
    # many words of equal frequency: ties between equally frequent merges everywhere
    corpus.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words))))
    code = ("import sys, json; from cinefm.text.tokenizer import train_wordpiece; "
            "t = train_wordpiece(open(sys.argv[1]).read().splitlines(), vocab_size=120, min_frequency=1); "
            "print(json.dumps(sorted(t.get_vocab().items(), key=lambda kv: kv[1])))")
    runs = {subprocess.run([sys.executable, "-c", code, str(corpus)], capture_output=True, text=True,
                           check=True).stdout for _ in range(4)}
    assert len(runs) == 1, "the trained vocabulary differs between processes"
    vocab = dict(json.loads(runs.pop()))
    assert vocab["[PAD]"] == 0 and "##y" in vocab and len(vocab) <= 120
