"""BERT WordPiece tokenizer: loaded from a local directory, or trained on the cohort.

The paper tokenized with the vocabulary of a BERT pre-trained on PubMed abstracts
(Gu et al., "Domain-Specific Language Model Pretraining for Biomedical NLP", ACM
HEALTH 2021; 30,522 tokens). Without hub access that directory is configured as
``text.tokenizer_dir``; when it is null a WordPiece vocabulary (Wu et al., "Google's
Neural Machine Translation System", 2016; BERT's uncased normalizer and
pre-tokenizer) is trained on the cohort's own scrubbed reports with ``tokenizers``.
Either way the result is saved to ``results/text/tokenizer/`` and loads back with
``transformers.BertTokenizerFast.from_pretrained``. In a trained vocabulary the PHI
tags (``[NAME]``, ``[DATE]`` ...) are single tokens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from cinefm.text.scrub import TAGS

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class TokenizerError(RuntimeError):
    """The configured tokenizer cannot be loaded; the message says what to put where."""


def load_tokenizer(tokenizer_dir: str | os.PathLike):
    """Load a BERT tokenizer from a local directory (``vocab.txt`` or ``tokenizer.json``)."""
    from transformers import BertTokenizerFast

    path = Path(tokenizer_dir)
    if not (path / "vocab.txt").is_file() and not (path / "tokenizer.json").is_file():
        raise TokenizerError(
            f"config.text.tokenizer_dir: no BERT tokenizer in {path} — put the model directory of "
            "the text encoder there (at least vocab.txt, e.g. from "
            "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract, copied from a machine with hub "
            "access), or set text.tokenizer_dir: null to train a WordPiece vocabulary on the reports"
        )
    try:
        return BertTokenizerFast.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise TokenizerError(f"config.text.tokenizer_dir: cannot load a BERT tokenizer from {path}: {err}") from err


def train_wordpiece(texts: Iterable[str], vocab_size: int, min_frequency: int = 2, lowercase: bool = True):
    """Train an uncased BERT WordPiece tokenizer on ``texts``; returns a BertTokenizerFast.

    Deterministic: the same texts give the same vocabulary, in every process. HF tokenizers'
    WordPiece trainer numbers each continuing piece (``##c``) when it first meets it while walking
    the word counts, a Rust HashMap seeded per process, and those ids break the ties between equally
    frequent merges, so the learned vocabulary changed from run to run. Here every ``##c`` of the
    corpus is handed to the trainer first, in character order (as special tokens, so they keep those
    ids), and the trained vocabulary is then rebuilt as a plain WordPiece model in which only
    BERT's special tokens and the PHI tags are special.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertTokenizerFast

    def pipeline(model):
        tok = Tokenizer(model)
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        return tok

    texts = list(texts)
    tok = pipeline(models.WordPiece(unk_token="[UNK]"))
    continuing = set()
    for text in texts:
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)):
            continuing.update(word[1:])
    specials = [*BERT_SPECIALS, *TAGS]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency,
        special_tokens=[*specials, *(f"##{c}" for c in sorted(continuing))], show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok = pipeline(models.WordPiece(vocab=tok.get_vocab(), unk_token="[UNK]"))
    tok.add_special_tokens(specials)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return BertTokenizerFast(
        tokenizer_object=tok, do_lower_case=lowercase, unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )


def save_tokenizer(tokenizer, out_dir: str | os.PathLike) -> Path:
    """Save ``tokenizer`` (+ a BERT ``vocab.txt``) to ``out_dir``, replacing it atomically."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tokenizer.save_pretrained(str(tmp))
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        (tmp / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def encode_sentences(tokenizer, sentences: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token ids per sentence, ``[CLS] ... [SEP]``, truncated to ``max_tokens``."""
    if not sentences:
        return []
    return tokenizer(list(sentences), truncation=True, max_length=max_tokens)["input_ids"]
