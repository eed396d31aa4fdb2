"""The ``rules`` backend: report sections, vocabulary matching and sentence-scoped NegEx cues.

A report is first cut into lines that carry a *section* role and a *field*
(:func:`report_segments`): header words before a colon ("IMPRESSION:", "Hx: ...",
``sections`` of ``config/labels.yaml``) switch the section; any other header
("Pericardium: small effusion", "RIGHT VENTRICLE:" on a line of its own) names the
field of its line or block, and inside a disease's field its ``fields.values`` words
are mentions of it ("effusion" under "Pericardium"). A mention inside one of the
disease's ``look_alikes`` ("ischaemic dilated cardiomyopathy") does not count.
Implicit subjects: a disease's ``subject.values`` word ("dilatation") that no structure
owns in its sentence (none named before it, none attached after it: "dilated lymph
nodes", "dilatation of the aortic root") belongs to the last structure named before it
in the same section, or to its field block's name; when that is the disease's
``subject.structure`` the word is a mention ("RV at the upper end of normal size; mild
dilatation cannot be excluded").

NegEx (Chapman et al., J Biomed Inform 2001) adapted as in CheXpert's labeler
(Irvin et al., AAAI 2019): each mention of a disease (synonym, abbreviation,
pattern or field value from ``config/labels.yaml``) is classified by the cues
around it in its sentence:

- a *pre* cue ends at most ``scope_words`` words before the mention, a *post* cue
  starts at most ``scope_words`` words after it, with no termination cue between;
  a cue inside the mention counts too ("the RV is not dilated");
- cue kinds rank ignore (family history, "evaluate for") > uncertainty > negation;
- overlapping cues: the longest at the leftmost position wins, so pseudo-negations
  ("no change in") and "cannot be excluded" shadow "no" and "excluded";
- typos: before matching, a long word one edit away from a vocabulary word is read
  as that word (:class:`TypoCorrector`).

Then, per mention: an amount of the disease's ``quantity`` list in scope ("trace",
"physiological") makes an affirmed or hedged mention absent; in the indication section only a mention after a
``known`` cue counts ("known HCM"; "?HCM", "evaluation for HCM" are the question); in
the history section hedged mentions are dropped (the referrer's doubt).

Mentions then combine per study (:func:`cinefm.labels.answers.combine`): any affirmed
-> 1; else any hedged -> unknown; else 0 — over the impression alone when it mentions
the disease and ``sections.impression_overrides`` is set (the conclusion revises the
findings), else over every section.

Measured against medspaCy's ConText (Eyre et al., AMIA 2021; Harkema et al., J Biomed
Inform 2009) and negspacy on the hand-labelled reports of
``tests/labels/data/cmr_reports.txt``: ``benchmarks/labels.py`` (results in
``benchmarks/README.md``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cinefm.labels.answers import Answer, combine
from cinefm.labels.vocabulary import Disease, LabelVocabulary, Sections

_WORD_RE = re.compile(r"\w+")
# What follows a finding word: "of (the) X" or a word; a word that is not one of
# _NOT_ATTACHED is what the finding qualifies ("dilated lymph nodes"), not a subject.
_ATTACHED_RE = re.compile(r"[ \t]+(of[ \t]+(?:the[ \t]+)?)?([A-Za-z]\w*)")
_NOT_ATTACHED = frozenset(
    "and or with without but since compared relative at in on to by for from which that is was are were "
    "cannot can could may might not no although though when as than likely possibly probably due "
    "secondary consistent versus vs now today also again still only".split())
# "Header: value" or "- Header: value": a section or field name of a report line.
_FIELD_RE = re.compile(r"^\s*(?:[-*\u2022]\s*)?([A-Za-z][A-Za-z0-9 /&()'-]{0,40}?)\s*:\s*(.*)$")


@dataclass(frozen=True)
class _Cue:
    start: int
    end: int
    text: str
    kinds: frozenset[tuple[str, str]]  # {(kind, "pre"|"post")}


def _phrase_regex(phrase: str) -> str:
    """Regex for a phrase: words joined by spaces, hyphens or nothing; word-bounded at
    the end when it ends in a word character (the start is bounded by :func:`_union`)."""
    phrase = phrase.strip()
    body = r"[\s-]*".join(re.escape(p) for p in re.split(r"[\s-]+", phrase) if p)
    return body + (r"(?!\w)" if re.search(r"\w$", phrase) else "")


def _union(phrases: Sequence[str], raw: Sequence[str] = ()) -> str:
    r"""One alternation of ``phrases`` (longest first) and regexes ``raw``. Those starting
    with a word character share one leading ``(?<!\w)``: a position inside a word then
    fails once instead of once per alternative ("no" not in "normal"; "?" anywhere)."""
    ordered = sorted(phrases, key=len, reverse=True)
    words = [_phrase_regex(p) for p in ordered if re.match(r"\w", p.strip())] + list(raw)
    other = [_phrase_regex(p) for p in ordered if not re.match(r"\w", p.strip())]
    alts = ([r"(?<!\w)(?:" + "|".join(words) + ")"] if words else []) + other
    return "(?:" + "|".join(alts) + ")"


@dataclass(frozen=True)
class Segment:
    """One line of a report (or its value after a section header) with its section role and field."""

    text: str
    section: str  # indication | history | findings | impression
    field: str | None  # normalized field name ("pericardium"), or None


def report_segments(text: str, sections: Sections) -> list[Segment]:
    """Cut ``text`` into lines with their section role and field (see the module docstring).

    Lines before any section header are findings. An indication or history header with
    text after it covers its own line; on a line of its own it covers the lines below up
    to a blank line or the next header. Findings and impression run to the next header.
    A blank line ends a field block (a field header on a line of its own).
    """
    roles = {_normalize(h): role for role in ("findings", "indication", "history", "impression")
             for h in getattr(sections, role)}
    section, block, out = "findings", None, []
    for line in (text or "").splitlines():
        if not line.strip():
            block = None
            if section in ("indication", "history"):
                section = "findings"
            continue
        m = _FIELD_RE.match(line)
        if m is None:
            out.append(Segment(line, section, block))
            continue
        name, rest = _normalize(m[1]), m[2]
        if name in roles:
            role, block = roles[name], None
            if rest.strip():
                out.append(Segment(rest, role, None))
            # "Indication: ..." on one line covers that line; a header on its own line
            # covers the block below it. Findings and impression run to the next header.
            if not rest.strip() or role not in ("indication", "history"):
                section = role
            elif section in ("indication", "history"):
                section = "findings"
        elif not rest.strip():
            block = name
        else:
            out.append(Segment(line, section, name))
    return out


class CueFinder:
    """Cue phrases by kind, found in a sentence and scoped to a mention (NegEx windows).

    ``phrases``: ``{phrase: {(kind, "pre"|"post"), ...}}``. Overlapping cues: the longest
    at the leftmost position wins (so pseudo cues shadow the cues they contain).
    """

    def __init__(self, phrases: dict[str, set[tuple[str, str]]], termination: Sequence[str], scope_words: int) -> None:
        kinds: dict[str, set[tuple[str, str]]] = {}
        for p, k in phrases.items():
            kinds.setdefault(_normalize(p), set()).update(k)
        self._kinds = {k: frozenset(v) for k, v in kinds.items()}
        # A lookahead finds cues at every position, also overlapping ones (": no" and
        # "no evidence of"); cues inside a longer cue are dropped in find().
        self._cue_re = re.compile("(?=(" + _union(list(kinds)) + "))", re.IGNORECASE) if kinds else None
        self._term_re = re.compile(_union(termination), re.IGNORECASE) if termination else None
        self.scope_words = scope_words

    def find(self, s: str) -> tuple[list[_Cue], list[int], list[int]]:
        """Cues (longest first at each position, none inside another), termination and word starts."""
        cues: list[_Cue] = []
        reach = -1
        for m in self._cue_re.finditer(s) if self._cue_re else ():
            start, end = m.span(1)
            if end <= reach:
                continue
            reach = end
            cues.append(_Cue(start, end, m[1], self._kinds.get(_normalize(m[1]), frozenset())))
        terms = [m.start() for m in self._term_re.finditer(s)] if self._term_re else []
        return cues, terms, [m.start() for m in _WORD_RE.finditer(s)]

    def hits(self, start: int, end: int, found: tuple[list[_Cue], list[int], list[int]]) -> dict[str, str]:
        """``{kind: cue text}`` of the cues whose scope reaches the mention ``[start, end)``."""
        cues, terms, words = found

        def n_words(a: int, b: int) -> int:
            return bisect.bisect_left(words, b) - bisect.bisect_left(words, a)

        def blocked(a: int, b: int) -> bool:
            return any(a <= t < b for t in terms)

        hits: dict[str, str] = {}
        for cue in cues:
            inside = start <= cue.start < end or cue.start < start < cue.end
            for kind, side in cue.kinds:
                if inside:  # "RV not dilated": a cue within the mention, whichever side it is for
                    ok = True
                elif side == "pre" and cue.start < start:
                    ok = n_words(cue.end, start) <= self.scope_words and not blocked(cue.end, start)
                elif side == "post" and cue.start >= start:
                    ok = n_words(end, cue.start) <= self.scope_words and not blocked(end, cue.start)
                else:
                    ok = False
                if ok:
                    hits.setdefault(kind, cue.text)
        return hits


def _mention_regex(d: Disease) -> re.Pattern:
    raw = [f"(?-i:{_phrase_regex(a)})" for a in sorted(d.abbreviations, key=len, reverse=True)]
    raw += [rf"(?:{p})(?!\w)" for p in d.patterns]
    return re.compile(_union(d.synonyms, raw), re.IGNORECASE)


def _normalize(phrase: str) -> str:
    return " ".join(re.split(r"[\s-]+", phrase.strip().lower()))


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


class TypoCorrector:
    """Map words one edit away from a known word back to it (symmetric-delete lookup).

    Insertions, deletions, substitutions and swaps of neighbours are one edit here
    (Damerau, "A technique for computer detection and correction of spelling errors",
    CACM 1964); the lookup compares single-character deletions of both words (Garbe's
    SymSpell idea), so a word costs O(length) dictionary probes. Words shorter than
    ``min_length`` and words that are themselves known are left alone; a word close to
    two different known words is left alone too, and so are the words of ``keep``
    (English words one edit from a vocabulary word: "rather" is not "father") and other
    inflections of a known word ("increased", "ventricles", "ischaemia" are not typos of
    "increase", "ventricle", "ischaemic": see :func:`_inflection`).
    """

    def __init__(self, known_words: set[str], min_length: int, keep: Sequence[str] = ()) -> None:
        self.min_length = min_length
        self.known = {w for w in known_words if len(w) >= max(min_length - 1, 1)}
        self.keep = {w.lower() for w in keep}
        self._by_deletion: dict[str, set[str]] = {}
        for w in self.known:
            for d in _deletions(w) | {w}:
                self._by_deletion.setdefault(d, set()).add(w)
        self._word_re = re.compile(rf"[A-Za-z]{{{max(min_length, 1)},}}")
        self._memo: dict[str, str | None] = {}

    def _lookup(self, low: str) -> str | None:
        if low in self.known or low in self.keep:
            return None
        candidates: set[str] = set(self._by_deletion.get(low, ()))
        for d in _deletions(low):
            candidates |= {w for w in self._by_deletion.get(d, ()) if abs(len(w) - len(low)) <= 1}
        candidates = {w for w in candidates if _one_edit(low, w) and not _inflection(low, w)}
        return next(iter(candidates)) if len(candidates) == 1 else None

    def __call__(self, text: str) -> str:
        if not self.min_length:
            return text

        def fix(m: re.Match) -> str:
            word = m[0]
            low = word.lower()
            if low not in self._memo:
                self._memo[low] = self._lookup(low)
            hit = self._memo[low]
            if hit is None:
                return word
            return hit.upper() if word.isupper() else hit.capitalize() if word[0].isupper() else hit

        return self._word_re.sub(fix, text)


# Endings that make another word of the same stem, not a typo: plural / third person "s",
# past "d", "-ia" / "-ic" (ischaemia, ischaemic), "-e".
_INFLECTIONS = frozenset({"", "s", "d", "a", "c", "e"})


def _inflection(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ only in an inflectional last letter ("increased" /
    "increase", "raised" / "raises", "ischaemia" / "ischaemic")."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return len(a) - n <= 1 and len(b) - n <= 1 and a[n:] in _INFLECTIONS and b[n:] in _INFLECTIONS


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one insertion, deletion, substitution or swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


class NegExEngine:
    """Our NegEx cue classifier: ``classify(sentence, spans) -> [Answer per span]``.

    Cue kinds rank ignore (family history, "evaluate for") > uncertainty > negation;
    ``pseudo`` cues only shield the words they contain.
    """

    name = "negex"

    def __init__(self, vocab: LabelVocabulary) -> None:
        c = vocab.cues
        phrases: dict[str, set[tuple[str, str]]] = {}
        for group, kind, side in [
            (c.negation_pre, "negation", "pre"), (c.negation_post, "negation", "post"),
            (c.uncertainty_pre, "uncertainty", "pre"), (c.uncertainty_post, "uncertainty", "post"),
            (c.pseudo, "pseudo", "pre"), (c.ignore, "ignore", "pre"),
        ]:
            for p in group:
                phrases.setdefault(p, set()).add((kind, side))
        self.cues = CueFinder(phrases, c.termination, vocab.scope_words)

    def classify(self, sentence: str, spans: Sequence[tuple[int, int]]) -> list[Answer]:
        found = self.cues.find(sentence)
        out = []
        for start, end in spans:
            hits = self.cues.hits(start, end, found)
            if "ignore" in hits:
                out.append(Answer(0, f"not about this patient ({hits['ignore']!r})"))
            elif "uncertainty" in hits:
                out.append(Answer(None, f"hedged ({hits['uncertainty']!r})"))
            elif "negation" in hits:
                out.append(Answer(0, f"negated ({hits['negation']!r})"))
            else:
                out.append(Answer(1))
        return out


class CueEngine(Protocol):
    """What :class:`RuleLabeler` needs from a cue classifier (ours, or a library's)."""

    name: str

    def classify(self, sentence: str, spans: Sequence[tuple[int, int]]) -> list[Answer]: ...


class RuleLabeler:
    """Label report text for every disease of ``vocab`` (see the module docstring).

    ``engine`` classifies each mention by the cues of its sentence (default
    :class:`NegExEngine`); ``sections=False`` reads every line as findings (the
    labeler before section awareness, kept to measure what sections add).
    """

    name = "rules"

    def __init__(self, vocab: LabelVocabulary, splitter: Callable[[str], list[str]] | None = None,
                 engine: CueEngine | None = None, sections: bool = True) -> None:
        if splitter is None:
            from cinefm.text.sentences import SentenceSplitter

            splitter = SentenceSplitter()
        self.vocab = vocab
        self.splitter = splitter
        self.engine = engine or NegExEngine(vocab)
        self.use_sections = sections
        self.model = self.engine.name + ("+sections" if sections else "")
        self.cue_set = vocab.cue_set
        self._mentions = {d.key: _mention_regex(d) for d in vocab.diseases}
        self._look_alikes = {d.key: re.compile(_union(d.look_alikes), re.IGNORECASE)
                             for d in vocab.diseases if d.look_alikes}
        self._fields: dict[str, list[tuple[str, re.Pattern]]] = {}
        for d in vocab.diseases:
            if d.field_values:
                rx = re.compile(_union([], [rf"(?:{p})(?!\w)" for p in d.field_values]), re.IGNORECASE)
                for name in d.field_names:
                    self._fields.setdefault(_normalize(name), []).append((d.key, rx))
        # Implicit subjects: structures, and per disease (its structure, its finding words).
        self._structures = (re.compile(r"(?<!\w)(?:" + "|".join(f"(?:{x})" for x in vocab.structures) + r")(?!\w)",
                                       re.IGNORECASE) if vocab.structures else None)
        self._subjects = {d.key: (re.compile(d.subject_structure, re.IGNORECASE),
                                  re.compile(_union([], [rf"(?:{v})(?!\w)" for v in d.subject_values]), re.IGNORECASE))
                          for d in vocab.diseases if d.subject_structure}
        c, s = vocab.cues, vocab.sections
        # Amounts read as normal (per disease) and the indication's "known" cues share one
        # finder with the pseudo cues, which shield them ("more than physiological").
        extra: dict[str, set[tuple[str, str]]] = {}
        for d in vocab.diseases:
            for p in d.quantity:
                extra.setdefault(p, set()).update({(f"quantity:{d.key}", "pre"), (f"quantity:{d.key}", "post")})
        for p in s.known:
            extra.setdefault(p, set()).add(("known", "pre"))
        for p in c.pseudo:
            extra.setdefault(p, set()).add(("pseudo", "pre"))
        self._extra = CueFinder(extra, c.termination, vocab.scope_words)
        phrases = [p for d in vocab.diseases for p in (*d.synonyms, *d.quantity)] + [
            p for group in (c.negation_pre, c.negation_post, c.uncertainty_pre, c.uncertainty_post,
                            c.pseudo, c.ignore, c.termination, s.known) for p in group]
        self._typos = TypoCorrector({w.lower() for p in phrases for w in re.findall(r"[A-Za-z]+", p)},
                                    vocab.typo_min_length, vocab.typo_keep)

    def label(self, texts: Sequence[str]) -> list[dict[str, Answer]]:
        """One ``{disease: Answer}`` per report text."""
        return [self.label_text(t) for t in texts]

    def mentions(self, text: str) -> list[tuple[str, str, str, Answer]]:
        """Every counted mention: ``(disease, section, sentence, Answer)`` (for inspection)."""
        out: list[tuple[str, str, str, Answer]] = []
        segments = (report_segments(text, self.vocab.sections) if self.use_sections
                    else [Segment(line, "findings", None) for line in (text or "").splitlines()])
        subject, section = None, None  # the last structure named (implicit subjects)
        for seg in segments:
            if seg.section != section:
                section, subject = seg.section, None
            if seg.field is not None:  # a field's name is the subject of its value
                subject = seg.field if self._structures and self._structures.fullmatch(seg.field) else None
            for sentence in self.splitter(seg.text):
                s = self._typos(sentence)
                for key, answer in self._label_sentence(s, seg, subject):
                    out.append((key, seg.section, s, answer))
                named = list(self._structures.finditer(s)) if self._structures else []
                if named:
                    subject = named[-1][0]
        return out

    def label_text(self, text: str) -> dict[str, Answer]:
        """``{disease: Answer}`` for one report."""
        found: dict[str, list[Answer]] = {k: [] for k in self._mentions}
        concluded: dict[str, list[Answer]] = {k: [] for k in self._mentions}
        for key, section, _, answer in self.mentions(text):
            found[key].append(answer)
            if section == "impression":
                concluded[key].append(answer)
        overrides = self.use_sections and self.vocab.sections.impression_overrides
        return {k: combine(concluded[k] if overrides and concluded[k] else v) for k, v in found.items()}

    def _implicit(self, s: str, raw: list[tuple[str, int, int]], subject: str | None) -> list[tuple[str, int, int]]:
        """Mentions by implicit subject: a disease's finding word that no structure owns in
        ``s`` (none before it in the sentence, none attached after it: "dilated X",
        "dilatation of X") when the last structure named before it (in ``s`` or the
        carried ``subject``) is the disease's structure."""
        if not self._subjects or self._structures is None:
            return []
        named = [(m.start(), m.end(), m[0]) for m in self._structures.finditer(s)]
        out = []
        for key, (structure, values) in self._subjects.items():
            for m in values.finditer(s):
                if any(a < m.end() and m.start() < b for _, a, b in raw):
                    continue  # part of a mention already ("dilated cardiomyopathy", "RV dilated")
                nxt = _ATTACHED_RE.match(s, m.end())
                if nxt and (nxt[1] or nxt[2].lower() not in _NOT_ATTACHED):
                    continue  # "dilated lymph nodes", "dilatation of the aortic root": its own subject
                before = [t for a, b, t in named if b <= m.start()]
                owner = before[-1] if before else subject
                if owner and structure.fullmatch(owner.strip()):
                    out.append((key, m.start(), m.end()))
        return out

    def _spans(self, s: str, field: str | None, subject: str | None = None) -> list[tuple[str, int, int]]:
        """``(disease, start, end)`` of the mentions in ``s``, none inside another of its disease."""
        raw = [(k, m.start(), m.end()) for k, rx in self._mentions.items() for m in rx.finditer(s)]
        for key, rx in self._fields.get(field or "", ()):
            raw += [(key, m.start(), m.end()) for m in rx.finditer(s)]
        for key, rx in self._look_alikes.items():
            for m in rx.finditer(s):
                raw = [r for r in raw if not (r[0] == key and m.start() <= r[1] and r[2] <= m.end())]
        raw += self._implicit(s, raw, subject)
        raw.sort(key=lambda x: (x[0], x[1], -x[2]))
        out: list[tuple[str, int, int]] = []
        for key, a, b in raw:
            if out and out[-1][0] == key and a < out[-1][2]:
                continue
            out.append((key, a, b))
        return out

    def _label_sentence(self, s: str, seg: Segment, subject: str | None = None) -> list[tuple[str, Answer]]:
        spans = self._spans(s, seg.field, subject)
        if not spans:
            return []
        answers = self.engine.classify(s, [(a, b) for _, a, b in spans])
        extra = self._extra.find(s)
        out = []
        for (key, a, b), answer in zip(spans, answers, strict=True):
            hits = self._extra.hits(a, b, extra)
            if answer.value != 0 and f"quantity:{key}" in hits:  # also "a trace ... cannot be excluded"
                answer = Answer(0, f"normal amount ({hits[f'quantity:{key}']!r})")
            if self.use_sections and seg.section == "indication" and not (answer.value == 1 and "known" in hits):
                continue  # the referral question, not a finding
            if self.use_sections and seg.section == "history" and answer.value is None:
                continue  # the referrer's doubt
            out.append((key, answer))
        return out
