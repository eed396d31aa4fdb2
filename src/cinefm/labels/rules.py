"""The ``rules`` backend: vocabulary matching with sentence-scoped NegEx cues.

NegEx (Chapman et al., J Biomed Inform 2001) adapted as in CheXpert's labeler
(Irvin et al., AAAI 2019): each mention of a disease (synonym, abbreviation or
pattern from ``config/labels.yaml``) is classified by the cues around it in its
sentence:

- a *pre* cue ends at most ``scope_words`` words before the mention, a *post* cue
  starts at most ``scope_words`` words after it, with no termination cue between;
  a cue inside the mention counts too ("the RV is not dilated");
- cue kinds rank ignore (family history, "evaluate for") > uncertainty > negation;
- overlapping cues: the longest at the leftmost position wins, so pseudo-negations
  ("no change in") and "cannot be excluded" shadow "no" and "excluded";
- typos: before matching, a long word one edit away from a vocabulary word is read
  as that word (:class:`TypoCorrector`).

Mentions then combine per study (:func:`cinefm.labels.answers.combine`):
any affirmed -> 1; else any hedged -> unknown; else 0.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cinefm.labels.answers import Answer, combine
from cinefm.labels.vocabulary import Disease, LabelVocabulary

_WORD_RE = re.compile(r"\w+")


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
    two different known words is left alone too.
    """

    def __init__(self, known_words: set[str], min_length: int) -> None:
        self.min_length = min_length
        self.known = {w for w in known_words if len(w) >= max(min_length - 1, 1)}
        self._by_deletion: dict[str, set[str]] = {}
        for w in self.known:
            for d in _deletions(w) | {w}:
                self._by_deletion.setdefault(d, set()).add(w)
        self._word_re = re.compile(rf"[A-Za-z]{{{max(min_length, 1)},}}")
        self._memo: dict[str, str | None] = {}

    def _lookup(self, low: str) -> str | None:
        if low in self.known:
            return None
        candidates: set[str] = set(self._by_deletion.get(low, ()))
        for d in _deletions(low):
            candidates |= {w for w in self._by_deletion.get(d, ()) if abs(len(w) - len(low)) <= 1}
        candidates = {w for w in candidates if _one_edit(low, w)}
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


class RuleLabeler:
    """Label report text for every disease of ``vocab`` (see the module docstring)."""

    name = "rules"
    model = "negex"

    def __init__(self, vocab: LabelVocabulary, splitter: Callable[[str], list[str]] | None = None) -> None:
        if splitter is None:
            from cinefm.text.sentences import SentenceSplitter

            splitter = SentenceSplitter()
        self.vocab = vocab
        self.splitter = splitter
        self._mentions = {d.key: _mention_regex(d) for d in vocab.diseases}
        c = vocab.cues
        phrases = [p for d in vocab.diseases for p in d.synonyms] + [
            p for group in (c.negation_pre, c.negation_post, c.uncertainty_pre, c.uncertainty_post,
                            c.pseudo, c.ignore) for p in group]
        self._typos = TypoCorrector({w.lower() for p in phrases for w in re.findall(r"[A-Za-z]+", p)},
                                    vocab.typo_min_length)
        kinds: dict[str, set[tuple[str, str]]] = {}
        for phrases, kind, side in [
            (c.negation_pre, "negation", "pre"), (c.negation_post, "negation", "post"),
            (c.uncertainty_pre, "uncertainty", "pre"), (c.uncertainty_post, "uncertainty", "post"),
            (c.pseudo, "pseudo", "pre"), (c.ignore, "ignore", "pre"),
        ]:
            for p in phrases:
                kinds.setdefault(_normalize(p), set()).add((kind, side))
        self._cue_kinds = {k: frozenset(v) for k, v in kinds.items()}
        # A lookahead finds cues at every position, also overlapping ones (": no" and
        # "no evidence of"); cues inside a longer cue are dropped in _find_cues.
        self._cue_re = re.compile("(?=(" + _union(list(kinds)) + "))", re.IGNORECASE)
        self._term_re = re.compile(_union(c.termination), re.IGNORECASE)

    def label(self, texts: Sequence[str]) -> list[dict[str, Answer]]:
        """One ``{disease: Answer}`` per report text."""
        return [self.label_text(t) for t in texts]

    def label_text(self, text: str) -> dict[str, Answer]:
        """``{disease: Answer}`` for one report."""
        found: dict[str, list[Answer]] = {k: [] for k in self._mentions}
        for sentence in self.splitter(text):
            self._label_sentence(self._typos(sentence), found)
        return {k: combine(v) for k, v in found.items()}

    def _label_sentence(self, s: str, found: dict[str, list[Answer]]) -> None:
        mentions = [(k, m) for k, rx in self._mentions.items() for m in rx.finditer(s)]
        if not mentions:
            return
        cues = self._find_cues(s)
        terms = [m.start() for m in self._term_re.finditer(s)]
        words = [m.start() for m in _WORD_RE.finditer(s)]
        for key, m in mentions:
            found[key].append(self._classify(m.start(), m.end(), cues, terms, words))

    def _find_cues(self, s: str) -> list[_Cue]:
        """Cues in ``s``, longest first at each position, none inside another."""
        cues: list[_Cue] = []
        reach = -1
        for m in self._cue_re.finditer(s):
            start, end = m.span(1)
            if end <= reach:
                continue
            reach = end
            cues.append(_Cue(start, end, m[1], self._cue_kinds.get(_normalize(m[1]), frozenset())))
        return cues

    def _classify(self, start: int, end: int, cues: list[_Cue], terms: list[int], words: list[int]) -> Answer:
        def n_words(a: int, b: int) -> int:
            return bisect.bisect_left(words, b) - bisect.bisect_left(words, a)

        def blocked(a: int, b: int) -> bool:
            return any(a <= t < b for t in terms)

        hits: dict[str, str] = {}
        for cue in cues:
            inside = start <= cue.start < end or cue.start < start < cue.end
            for kind, side in cue.kinds:
                if side == "pre" and cue.start < start:
                    ok = inside or (n_words(cue.end, start) <= self.vocab.scope_words
                                    and not blocked(cue.end, start))
                elif side == "post" and cue.start >= start:
                    ok = inside or (n_words(end, cue.start) <= self.vocab.scope_words
                                    and not blocked(end, cue.start))
                else:
                    ok = False
                if ok:
                    hits.setdefault(kind, cue.text)
        if "ignore" in hits:
            return Answer(0, f"not about this patient ({hits['ignore']!r})")
        if "uncertainty" in hits:
            return Answer(None, f"hedged ({hits['uncertainty']!r})")
        if "negation" in hits:
            return Answer(0, f"negated ({hits['negation']!r})")
        return Answer(1)
