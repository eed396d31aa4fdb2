"""The ``hf`` backend: a local transformers causal LM answering the same prompts.

The model directory (``labels.hf.path``: ``config.json``, tokenizer files, weights)
is loaded with ``AutoTokenizer`` / ``AutoModelForCausalLM`` from disk only. Prompts
go through the tokenizer's chat template when it has one, else a plain
``system / user / assistant`` layout. Decoding is greedy (temperature 0), one chat
at a time; replies are validated and cached exactly as for the ``openai`` backend.
A prompt longer than the model's context makes that label unknown with the reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cinefm.config import ConfigError
from cinefm.labels.answers import Answer
from cinefm.labels.cache import ResponseCache, cache_key
from cinefm.labels.prompts import LabelingError, Message, ask_validated, build_messages
from cinefm.labels.vocabulary import LabelVocabulary

log = logging.getLogger(__name__)


def _plain_prompt(messages: list[Message]) -> str:
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


class HFBackend:
    """Label reports with a local causal LM (see the module docstring)."""

    name = "hf"

    def __init__(
        self,
        path: str | os.PathLike | None,
        vocab: LabelVocabulary,
        *,
        max_new_tokens: int = 64,
        max_retries: int = 1,
        device: str = "auto",
        cache: ResponseCache | None = None,
    ) -> None:
        if not path or not (Path(path) / "config.json").is_file():
            raise ConfigError(
                f"config.labels.hf.path: no causal-LM directory at {path!r} — put a transformers model "
                "there (config.json, tokenizer files, *.safetensors; e.g. `hf download "
                "google/medgemma-27b-text-it --local-dir DIR` on a machine with hub access, then copy "
                "DIR), or use labels.backend: rules / openai"
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = Path(path)
        self.model = self.path.name
        self.vocab = vocab
        self.max_new_tokens = max_new_tokens
        self.max_retries = max_retries
        self.cache = cache
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.lm = AutoModelForCausalLM.from_pretrained(str(self.path), local_files_only=True, dtype="auto")
        self.lm.to(self.device).eval()
        cfg = self.lm.config
        self.context = int(getattr(cfg, "max_position_embeddings", 0) or getattr(cfg, "n_positions", 0) or 0)
        self.generations = 0

    def label(self, texts: Sequence[str]) -> list[dict[str, Answer]]:
        """One ``{disease: Answer}`` per report."""
        out = []
        for i, text in enumerate(texts):
            out.append({
                d.key: ask_validated(
                    self.complete, build_messages(self.vocab.prompts, d, text), self.vocab.prompts,
                    self.max_retries, f"report {i + 1} / {d.key}",
                )
                for d in self.vocab.diseases
            })
        return out

    def _prompt(self, messages: list[Message]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return _plain_prompt(messages)

    def complete(self, messages: list[Message]) -> str:
        """Greedy reply to ``messages`` (cached)."""
        key = cache_key(f"hf:{self.path.resolve()}", messages, {"max_new_tokens": self.max_new_tokens})
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        import torch

        enc = self.tokenizer(self._prompt(messages), return_tensors="pt", add_special_tokens=False)
        n = enc["input_ids"].shape[1]
        if self.context and n + self.max_new_tokens > self.context:
            raise LabelingError(
                f"prompt of {n} tokens + {self.max_new_tokens} new exceeds the model's context of {self.context}"
            )
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with torch.inference_mode():
            ids = self.lm.generate(
                **{k: v.to(self.device) for k, v in enc.items()}, max_new_tokens=self.max_new_tokens,
                do_sample=False, pad_token_id=pad,
            )
        self.generations += 1
        content = self.tokenizer.decode(ids[0, n:], skip_special_tokens=True)
        if self.cache is not None:
            self.cache.put(key, content, self.model)
        return content
