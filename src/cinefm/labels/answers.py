"""The record every backend returns per (report, disease), and how mentions combine."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """A label value (1 present, 0 absent, None unknown) and, when unknown, why."""

    value: int | None
    reason: str = ""


def combine(answers: Iterable[Answer]) -> Answer:
    """Study-level label from several statements: positive > uncertain > negative.

    The CheXpert aggregation (Irvin et al., AAAI 2019): one affirmed mention makes the
    study positive; otherwise any hedge makes it unknown; otherwise it is negative
    (which includes "not mentioned" when ``answers`` is empty).
    """
    answers = list(answers)
    for a in answers:
        if a.value == 1:
            return a
    for a in answers:
        if a.value is None:
            return a
    return Answer(0)
