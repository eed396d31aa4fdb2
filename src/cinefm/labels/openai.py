"""The ``openai`` backend: an OpenAI-compatible chat-completions server on this machine
or the cluster (vLLM, llama.cpp server, Ollama, TGI ...), over plain HTTP.

- ``POST {base_url}/chat/completions`` with ``model``, ``messages``, ``temperature``
  (0: the paper's setting, deterministic) and ``max_tokens``; the reply is
  ``choices[0].message.content``. An API key, when the server wants one, comes from
  the environment variable ``CINEFM_LLM_API_KEY`` (never from config).
- Reports are PHI: a ``base_url`` whose host does not resolve to loopback or a
  private (cluster) address is refused before any request unless
  ``labels.llm.allow_remote`` is true. Proxies from the environment are not used.
- ``concurrency`` requests in flight (threads); HTTP 429/5xx, timeouts and dropped
  connections are retried ``max_retries`` times after ``backoff_s * 2**attempt``
  seconds (or the server's ``Retry-After``); 401/403/404 stop the run (wrong key,
  URL or model); other 4xx make that one label unknown.
- Replies are validated (:mod:`cinefm.labels.prompts`) and cached on disk
  (:mod:`cinefm.labels.cache`), so a rerun sends no request.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from cinefm.labels.answers import Answer
from cinefm.labels.cache import ResponseCache, cache_key
from cinefm.labels.prompts import LabelingError, Message, ask_validated, build_messages
from cinefm.labels.vocabulary import LabelVocabulary

log = logging.getLogger(__name__)

API_KEY_ENV = "CINEFM_LLM_API_KEY"
_RETRY_STATUS = {408, 409, 425, 429}
_FATAL_STATUS = {401, 403, 404}
_MAX_RETRY_AFTER_S = 60.0


class EndpointError(RuntimeError):
    """The configured server may not or cannot be used; the message names the key to change."""


@dataclass(frozen=True)
class LLMSettings:
    """``labels.llm`` of the config."""

    base_url: str
    model: str
    temperature: float = 0.0
    max_tokens: int = 256
    concurrency: int = 4
    max_retries: int = 3
    backoff_s: float = 1.0
    timeout_s: float = 120.0
    allow_remote: bool = False

    @classmethod
    def from_config(cls, llm: dict[str, Any]) -> LLMSettings:
        """Build from the ``labels.llm`` mapping (unknown keys such as cache_dir ignored)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in llm.items() if k in fields})


def _is_local(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_loopback or ip.is_private or ip.is_link_local


def check_endpoint(base_url: str, allow_remote: bool) -> None:
    """Refuse ``base_url`` unless its host is loopback or private, or ``allow_remote``."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(
            f"config.labels.llm.base_url: {base_url!r} is not an http(s) URL such as http://127.0.0.1:8000/v1"
        )
    if allow_remote:
        log.warning("labels.llm.allow_remote is true: reports are sent to %s", parts.hostname)
        return
    host = parts.hostname
    hint = ("reports are PHI: serve the model on this machine or the cluster, or set "
            "labels.llm.allow_remote: true to send them there anyway")
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except socket.gaierror as err:
            raise EndpointError(
                f"config.labels.llm.base_url: cannot resolve {host!r} ({err}) to check that it is "
                f"local; {hint}"
            ) from err
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    remote = sorted(str(ip) for ip in addresses if not _is_local(ip))
    if remote:
        raise EndpointError(
            f"config.labels.llm.base_url: {host} resolves to {', '.join(remote)}, which is not "
            f"loopback or a private (cluster) address; {hint}"
        )


class OpenAIBackend:
    """Label reports by asking an OpenAI-compatible server one question per disease."""

    name = "openai"

    def __init__(self, settings: LLMSettings, vocab: LabelVocabulary, cache: ResponseCache | None = None) -> None:
        check_endpoint(settings.base_url, settings.allow_remote)
        self.settings = settings
        self.model = settings.model
        self.vocab = vocab
        self.cache = cache
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        self.requests_sent = 0
        self._lock = threading.Lock()
        # No proxies: a proxy from the environment would carry PHI off the machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def _gen(self) -> dict[str, Any]:
        return {"temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens}

    def label(self, texts: Sequence[str]) -> list[dict[str, Answer]]:
        """One ``{disease: Answer}`` per report; ``concurrency`` requests in flight."""
        tasks = [(i, d) for i in range(len(texts)) for d in self.vocab.diseases]
        out: list[dict[str, Answer]] = [{} for _ in texts]

        def run(task):
            i, disease = task
            messages = build_messages(self.vocab.prompts, disease, texts[i])
            what = f"report {i + 1} / {disease.key}"
            return i, disease.key, ask_validated(
                self.complete, messages, self.vocab.prompts, self.settings.max_retries, what
            )

        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency)
        try:
            for i, key, answer in pool.map(run, tasks):
                out[i][key] = answer
        finally:  # on a fatal error (wrong URL, key or model) send nothing more
            pool.shutdown(wait=True, cancel_futures=True)
        return out

    def complete(self, messages: list[Message]) -> str:
        """The reply to ``messages``: from the cache, else from the server (then cached)."""
        key = cache_key(self.model, messages, self._gen)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        content = self._post_with_retries(messages)
        if self.cache is not None:
            self.cache.put(key, content, self.model)
        return content

    def _post_with_retries(self, messages: list[Message]) -> str:
        last = ""
        for attempt in range(self.settings.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, last))
            try:
                return self._post(messages)
            except _Retryable as err:
                last = err
                log.info("%s: %s (try %d of %d)", self.url, err, attempt + 1, self.settings.max_retries + 1)
        raise LabelingError(f"server error after {self.settings.max_retries + 1} tries: {last}")

    def _delay(self, attempt: int, last: object) -> float:
        retry_after = getattr(last, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, _MAX_RETRY_AFTER_S)
        return self.settings.backoff_s * 2 ** (attempt - 1)

    def _post(self, messages: list[Message]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, **self._gen}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if os.environ.get(API_KEY_ENV):
            headers["Authorization"] = f"Bearer {os.environ[API_KEY_ENV]}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with self._lock:
            self.requests_sent += 1
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:200].decode("utf-8", "replace")
            if err.code in _RETRY_STATUS or err.code >= 500:
                raise _Retryable(f"HTTP {err.code} {detail}", _retry_after(err.headers)) from None
            if err.code in _FATAL_STATUS:
                raise EndpointError(
                    f"{self.url}: HTTP {err.code} {detail} — check labels.llm.base_url, labels.llm.model "
                    f"({self.model}) and the API key in ${API_KEY_ENV}"
                ) from None
            raise LabelingError(f"HTTP {err.code} {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, HTTPException, OSError) as err:
            raise _Retryable(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from None
        try:
            return json.loads(payload)["choices"][0]["message"]["content"] or ""
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise _Retryable(f"not a chat-completions response: {payload[:120]!r}") from None


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
