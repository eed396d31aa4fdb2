"""The hf backend with a tiny random causal LM built here: garbage in, unknown-with-reason out."""

from dataclasses import replace

import pandas as pd
import pytest

from cinefm.config import ConfigError
from cinefm.labels.cache import ResponseCache
from cinefm.labels.hf import HFBackend
from cinefm.labels.table import label_reports

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _tiny_lm(path, n_positions, chat_template=None):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["You are a cardiologist. Report: no evidence of hypertrophic cardiomyopathy.",
              'Reply with JSON only: {"answer": "yes" | "no" | "uncertain"}'] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(fast), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Generation on a shared 2-core machine is ~10x faster without thread oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return _tiny_lm(tmp_path_factory.mktemp("lm") / "tiny-gpt2", 2048, CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def two_diseases(vocab):
    return replace(vocab, diseases=vocab.diseases[:2])


def test_random_model_answers_become_unknown_with_a_reason(tiny_lm, labels_cfg, reports_csv, tmp_path):
    cfg = dict(labels_cfg, backend="hf", hf={"path": str(tiny_lm), "max_new_tokens": 6, "device": "cpu"},
               llm=dict(labels_cfg["llm"], max_retries=1), diseases=["hcm", "dcm"])
    out = label_reports(reports_csv, tmp_path / "labels.csv", cfg, cache_dir=tmp_path / "cache")
    written = pd.read_csv(tmp_path / "labels.csv", dtype=str, keep_default_na=False)
    assert list(written["study_id"]) == ["S01", "S02", "S03", "S04", "S05"]
    assert set(written["backend"]) == {"hf"} and set(written["model"]) == {"tiny-gpt2"}
    assert list(written.columns[1:4]) == ["patient_id", "hcm", "dcm"]
    assert (written[["hcm", "dcm"]] == "").all().all()  # nothing valid came out
    assert all("invalid answer after 2 tries" in n for n in out["notes"])
    assert written.loc[written["study_id"] == "S01", "lvef"].item() == "62.0"  # LVEF is parsed, not asked


def test_generation_plumbing_retries_and_cache(tiny_lm, two_diseases, tmp_path):
    cache = ResponseCache(tmp_path / "cache")
    first = HFBackend(tiny_lm, two_diseases, max_new_tokens=6, max_retries=2, device="cpu", cache=cache)
    answers = first.label(["No evidence of HCM.", "Dilated cardiomyopathy."])
    assert first.generations == 2 * 2 * 3  # reports x diseases x (1 + retries)
    assert all(a.value is None and a.reason.startswith("invalid answer after 3 tries") for r in answers
               for a in r.values())
    second = HFBackend(tiny_lm, two_diseases, max_new_tokens=6, max_retries=2, device="cpu", cache=cache)
    assert second.label(["No evidence of HCM.", "Dilated cardiomyopathy."]) == answers
    assert second.generations == 0


def test_prompt_longer_than_the_context_is_unknown_with_the_reason(two_diseases, tmp_path):
    short = _tiny_lm(tmp_path / "short-lm", 64)  # no chat template: the plain prompt layout
    backend = HFBackend(short, two_diseases, max_new_tokens=4, max_retries=0, device="cpu")
    answer = backend.label(["HCM."])[0]["hcm"]
    assert answer.value is None and "exceeds the model's context of 64" in answer.reason
    assert backend.generations == 0


def test_missing_model_directory_says_what_to_put_there(vocab, tmp_path):
    with pytest.raises(ConfigError, match=r"labels\.hf\.path.*config\.json"):
        HFBackend(tmp_path / "medgemma", vocab)
    with pytest.raises(ConfigError, match=r"labels\.hf\.path"):
        HFBackend(None, vocab)
