"""A small OpenAI-compatible chat-completions server with a pluggable responder.

An offline stand-in for vLLM & co. in tests, benchmarks and demos of the ``openai``
backend: ``POST /v1/chat/completions`` on 127.0.0.1, one thread per connection. A
*responder* maps the decoded request body to a :class:`Reply` (status, content,
delay, headers), so a caller scripts slow, failing or malformed answers.
:func:`keyword_responder` answers by keyword rules on the report in the prompt.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REPORT_RE = re.compile(r'"""\s*(.*?)\s*"""', re.DOTALL)


@dataclass(frozen=True)
class Reply:
    """What the server sends: ``content`` as the assistant message (status 200), or
    ``body`` verbatim with ``status``; after ``delay_s`` seconds."""

    content: str = ""
    status: int = 200
    body: str | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[dict[str, Any]], Reply]


def report_and_question(request: Mapping[str, Any]) -> tuple[str, str]:
    """The report (between triple quotes) and the question of the first user message."""
    user = next(m["content"] for m in request["messages"] if m["role"] == "user")
    m = _REPORT_RE.search(user)
    return (m.group(1) if m else ""), (user[m.end():] if m else user)


def keyword_answer(report: str, words: Sequence[str]) -> str:
    """``yes``/``no``/``uncertain`` for a topic by keywords, sentence by sentence: a keyword
    in a sentence with "possible" or "cannot be excluded" is uncertain, after "no" or "not"
    in its sentence is no, else yes; a topic never named is no."""
    found = "no"
    for sentence in re.split(r"(?<=[.;])\s+", report.lower()):
        for w in (w.lower() for w in words):
            at = sentence.find(w)
            if at < 0:
                continue
            if "possible" in sentence or "cannot be excluded" in sentence:
                found = "uncertain"
            elif not re.search(r"\b(?:no|not)\b", sentence[:at]):
                return "yes"
    return found


def keyword_responder(topics: Mapping[str, Sequence[str]], latency_s: float = 0.0) -> Responder:
    """Responder answering with :func:`keyword_answer`: ``topics`` maps a phrase of the
    question (e.g. a disease definition) to the report words that mean it."""

    def respond(request: dict[str, Any]) -> Reply:
        report, question = report_and_question(request)
        words = next((w for topic, w in topics.items() if topic.lower() in question.lower()), ())
        answer = keyword_answer(report, words)
        return Reply(json.dumps({"answer": answer, "evidence": ""}), delay_s=latency_s)

    return respond


class ChatServer:
    """``with ChatServer(responder) as server: server.base_url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, responder: Responder, host: str = "127.0.0.1", port: int = 0) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # the http.server API names it so
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(body)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, json.dumps({"error": f"no route {self.path}"}), {})
                reply = server.responder(body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.body if reply.body is not None else json.dumps({
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion",
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply.content}}],
                })
                self._send(reply.status, payload, reply.headers)

            def _send(self, status: int, payload: str, headers: dict[str, str]) -> None:
                data = payload.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
