"""LLM prompts and answer validation, shared by the ``openai`` and ``hf`` backends.

One chat per (report, disease): the system prompt and the disease's question from
``config/labels.yaml`` (placeholders ``{report}``, ``{disease}``, ``{definition}``
replaced literally, so JSON braces in a template need no escaping). Every reply
must be a JSON object valid against ``llm.answer_schema``; a fenced block or text
around one object is tolerated. An invalid reply is retried with the model's own
reply and the ``correction`` template appended, at most ``max_retries`` times; then
the label is unknown with the reason (logged and written to ``labels.csv``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import jsonschema

from cinefm.labels.answers import Answer
from cinefm.labels.vocabulary import Disease, Prompts

log = logging.getLogger(__name__)

Message = dict[str, str]
_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


class InvalidAnswer(ValueError):
    """A model reply that is not a valid answer; the message is the reason."""


class LabelingError(RuntimeError):
    """A request could not be answered (server unreachable, prompt too long ...)."""


def _fill(template: str, **values: str) -> str:
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


def build_messages(prompts: Prompts, disease: Disease, report: str) -> list[Message]:
    """Chat messages asking about ``disease`` in ``report``."""
    fields = {"report": report.strip(), "disease": disease.name, "definition": disease.definition}
    return [
        {"role": "system", "content": _fill(prompts.system, **fields)},
        {"role": "user", "content": _fill(prompts.question, **fields)},
    ]


def _json_object(content: str) -> Any:
    text = content.strip()
    fenced = _FENCE_RE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start = text.find("{")
    if start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            return obj
        except json.JSONDecodeError:
            pass
    snippet = content.strip().replace("\n", " ")[:80]
    raise InvalidAnswer(f"not JSON: {snippet!r}")


def parse_answer(content: str, prompts: Prompts) -> Answer:
    """Validate one reply against the answer schema; raise InvalidAnswer with the reason."""
    obj = _json_object(content)
    try:
        jsonschema.validate(obj, prompts.answer_schema)
    except jsonschema.ValidationError as err:
        raise InvalidAnswer(f"JSON does not match the answer schema: {err.message}") from None
    answer = obj.get("answer") if isinstance(obj, dict) else None
    if answer not in prompts.answer_values:
        raise InvalidAnswer(f"answer {answer!r} is not one of {sorted(prompts.answer_values)}")
    value = prompts.answer_values[answer]
    return Answer(value, "" if value is not None else f"model answered {answer!r}")


def ask_validated(
    complete: Callable[[list[Message]], str],
    messages: list[Message],
    prompts: Prompts,
    max_retries: int,
    what: str = "",
) -> Answer:
    """Ask via ``complete(messages) -> reply``; validate, re-ask on invalid replies.

    A LabelingError from ``complete`` gives an unknown answer with its message.
    """
    reason = ""
    for _ in range(max_retries + 1):
        try:
            content = complete(messages)
        except LabelingError as err:
            log.warning("%s: unknown — %s", what, err)
            return Answer(None, str(err))
        try:
            return parse_answer(content, prompts)
        except InvalidAnswer as err:
            reason = str(err)
            messages = [
                *messages,
                {"role": "assistant", "content": content},
                {"role": "user", "content": _fill(prompts.correction, reason=reason)},
            ]
    reason = f"invalid answer after {max_retries + 1} tries: {reason}"
    log.warning("%s: unknown — %s", what, reason)
    return Answer(None, reason)
