"""k random report sentences -> one [CLS] ... [SEP] sequence; special token ids."""

import json

import numpy as np
import pytest
import torch

from cinefm.data.text import ReportSource, SpecialTokens, compose_text, load_special_tokens

SP = SpecialTokens(cls=2, sep=3, pad=0)
SENTENCES = [[2, 10, 11, 3], [2, 20, 3], [30, 31, 32], [40]]  # some with [CLS]/[SEP], some bare


def test_k_sentences_are_joined_in_report_order_without_inner_special_tokens():
    seen = set()
    for seed in range(30):
        ids = compose_text(SENTENCES, 2, np.random.default_rng(seed), 64, SP).tolist()
        assert ids[0] == 2 and ids[-1] == 3 and 2 not in ids[1:] and 3 not in ids[:-1]
        firsts = [t for t in ids[1:-1] if t % 10 == 0]
        assert len(firsts) == 2 and firsts == sorted(firsts)
        seen.add(tuple(firsts))
    assert len(seen) == 6  # all pairs of 4 sentences get drawn


def test_fewer_sentences_than_k_gives_all_and_truncation_keeps_sep():
    ids = compose_text(SENTENCES, 5, np.random.default_rng(0), 64, SP)
    assert ids.tolist() == [2, 10, 11, 20, 30, 31, 32, 40, 3]
    short = compose_text(SENTENCES, 5, np.random.default_rng(0), 5, SP)
    assert short.tolist() == [2, 10, 11, 20, 3] and short.dtype == torch.long
    assert compose_text([], 5, np.random.default_rng(0), 8, SP).tolist() == [2, 3]


def test_special_ids_come_from_vocab_txt_or_tokenizer_json(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nheart\n")
    assert load_special_tokens(tmp_path) == SpecialTokens(cls=2, sep=3, pad=0)
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece({"[UNK]": 0, "[SEP]": 1, "[CLS]": 2, "[PAD]": 3}, unk_token="[UNK]"))
    folder = tmp_path / "tj"
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    assert load_special_tokens(folder) == SpecialTokens(cls=2, sep=1, pad=3)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "vocab.txt").write_text("[PAD]\nheart\n")
    with pytest.raises(ValueError, match=r"lacks special token\(s\) \['\[CLS\]', '\[SEP\]'\]"):
        load_special_tokens(tmp_path / "bad")


def test_report_source_pickles_without_its_open_index(tmp_path):
    import pickle

    src = ReportSource(reports={"S1": {"input_ids": SENTENCES}})
    assert "S1" in src and "S2" not in src
    assert pickle.loads(pickle.dumps(src)).sentence_ids("S1") == SENTENCES
    with pytest.raises(ValueError, match="exactly one"):
        ReportSource()


def test_report_source_reads_the_indexed_json_of_the_text_stage(tmp_path):
    indexed = pytest.importorskip("cinefm.text.indexed_json")  # written by the text stage
    path = tmp_path / "reports.json"
    entries = {"S1": {"sentences": ["a.", "b."], "input_ids": [[2, 5, 3], [2, 6, 3]]}}
    indexed.write_indexed_json(entries, path)
    src = ReportSource(path=path)
    assert "S1" in src and src.sentence_ids("S1") == [[2, 5, 3], [2, 6, 3]]
    import pickle

    clone = pickle.loads(pickle.dumps(src))
    assert clone.sentence_ids("S1") == [[2, 5, 3], [2, 6, 3]]
    json.dumps(entries)
