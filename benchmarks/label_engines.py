"""Library cue classifiers measured against our NegEx engine (``benchmarks/labels.py``).

Both plug into :class:`cinefm.labels.rules.RuleLabeler` as its ``engine``, so sections,
fields, mentions, amounts and the study-level combination are the same for every
engine and only the cue handling differs:

- :class:`ConTextEngine`: medspaCy's ConText (Harkema et al., "ConText: an algorithm for
  determining negation, experiencer, and temporal status from clinical reports",
  J Biomed Inform 2009; Eyre et al., "Launching into clinical space with medspaCy",
  AMIA 2021), on a blank spaCy tokenizer (no model download), with medspaCy's default
  rules (negated / possible / historical / hypothetical / family, with termination) or
  with the cue set of ``config/labels.yaml`` translated into ConText rules;
- :class:`NegspacyEngine`: negspacy's ``negex`` component (negation only) with its
  ``en_clinical`` termset.

They stay out of the package: on the hand-labelled reports our engine scored as well or
better and is several times faster (``benchmarks/README.md``), so medspacy and negspacy
are not dependencies of cinefm. Install them, pinned, into the project's environment to
rerun the comparison (two steps; ``benchmarks/labels.py`` skips the engines that are
missing and says so)::

    pip install -r benchmarks/requirements-label-engines.txt
    pip install --no-deps -r benchmarks/requirements-label-engines-nodeps.txt

The second file is installed without dependencies because medspacy 1.3.1 (and PyRuSH)
declare spacy<3.8, which would pull numpy<2 over the project's numpy; everything they
import is pinned in the first file, and ConText runs on spacy 3.8.7 (measured). Both files
were checked with ``pip install --dry-run`` and installed into a fresh virtual environment
in which both engines load (``benchmarks/README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cinefm.labels.answers import Answer
from cinefm.labels.vocabulary import LabelVocabulary


def _doc(nlp, sentence: str, spans: Sequence[tuple[int, int]]):
    """A one-sentence Doc of the blank tokenizer and a spaCy span per mention (None if unaligned)."""
    doc = nlp.make_doc(sentence)
    for i, tok in enumerate(doc):
        tok.is_sent_start = i == 0
    return doc, [doc.char_span(a, b, label="FINDING", alignment_mode="expand") for a, b in spans]


class ConTextEngine:
    """medspaCy ConText as a cue engine; ``vocab`` given: our cue set as ConText rules."""

    def __init__(self, vocab: LabelVocabulary | None = None) -> None:
        import spacy
        from medspacy.context import ConText, ConTextRule

        self.nlp = spacy.blank("en")
        self.name = "context-default" if vocab is None else "context-ourcues"
        if vocab is None:
            self.context = ConText(self.nlp, rules="default", input_span_type="group")
        else:
            self.context = ConText(self.nlp, rules=None, input_span_type="group")
            c, scope = vocab.cues, vocab.scope_words
            rules = []
            for group, category, direction in [
                (c.negation_pre, "NEGATED_EXISTENCE", "FORWARD"), (c.negation_post, "NEGATED_EXISTENCE", "BACKWARD"),
                (c.uncertainty_pre, "POSSIBLE_EXISTENCE", "FORWARD"),
                (c.uncertainty_post, "POSSIBLE_EXISTENCE", "BACKWARD"),
                (c.ignore, "HYPOTHETICAL", "FORWARD"),
            ]:
                rules += [ConTextRule(p, category, direction=direction, max_scope=scope) for p in group]
            rules += [ConTextRule(p, "PSEUDO", direction="PSEUDO") for p in c.pseudo]
            rules += [ConTextRule(p, "TERMINATE", direction="TERMINATE") for p in c.termination]
            self.context.add(rules)

    def classify(self, sentence: str, spans: Sequence[tuple[int, int]]) -> list[Answer]:
        doc, ents = _doc(self.nlp, sentence, spans)
        doc.spans["medspacy_spans"] = [e for e in ents if e is not None]
        self.context(doc)
        by_span = {(e.start_char, e.end_char): e for e in doc.spans["medspacy_spans"]}
        out = []
        for e in ents:
            e = by_span.get((e.start_char, e.end_char)) if e is not None else None
            if e is None:
                out.append(Answer(1))
            elif e._.is_family or e._.is_hypothetical:
                out.append(Answer(0, "not about this patient (ConText)"))
            elif e._.is_uncertain:
                out.append(Answer(None, "hedged (ConText)"))
            elif e._.is_negated:
                out.append(Answer(0, "negated (ConText)"))
            else:
                out.append(Answer(1))
        return out


class NegspacyEngine:
    """negspacy's NegEx (``en_clinical`` termset) as a cue engine: negation only."""

    name = "negspacy"

    def __init__(self) -> None:
        import negspacy.negation  # noqa: F401  (registers the "negex" factory)
        import spacy
        from negspacy.termsets import termset

        self.nlp = spacy.blank("en")
        self.negex = self.nlp.add_pipe("negex", config={"neg_termset": termset("en_clinical").get_patterns(),
                                                        "chunk_prefix": []})

    def classify(self, sentence: str, spans: Sequence[tuple[int, int]]) -> list[Answer]:
        doc, ents = _doc(self.nlp, sentence, spans)
        kept, reach = [], -1
        for e in sorted((e for e in ents if e is not None), key=lambda e: (e.start, -e.end)):
            if e.start >= reach:  # doc.ents may not overlap
                kept.append(e)
                reach = e.end
        doc.ents = kept
        self.negex(doc)
        negated = {(e.start_char, e.end_char) for e in doc.ents if e._.negex}
        return [Answer(0, "negated (negspacy)") if e is not None and (e.start_char, e.end_char) in negated
                else Answer(1) for e in ents]
