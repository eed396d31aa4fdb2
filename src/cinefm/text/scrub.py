"""PHI scrubbing of free-text reports: names, dates, record numbers, phones, e-mails.

Rule-based de-identification in the spirit of the HIPAA Safe Harbor list
(45 CFR 164.514(b)(2)) and of regex de-identifiers such as Neamatullah et al.,
"Automated de-identification of free-text medical records", BMC Med Inform Decis
Mak 2008 (the PhysioNet ``deid`` package). Each finding is replaced by a tag:

=========  ==============================================================
``[NAME]`` the row's own patient name (every part, any case, DICOM ``^``
           form), title + name (``Dr. Smith``), names after labels such as
           ``Patient:``, ``Referred by``, ``Electronically signed by``
``[DATE]`` ISO, numeric (``03/04/2021``, ``4.3.21``), compact ``20210304``
           and month-name dates (``12 March 2021``, ``Mar 12th, 2021``,
           ``12-Mar-2021``, ``March 2021``, ``March 12``), also with a misspelled
           month between a day and a four-digit year; a year alone is kept
``[ID]``   the row's own patient id / accession, values after ``MRN``,
           ``Acc#``, ``ID:`` ..., any run of >= 6 digits, letter-prefixed numbers
``[PHONE]`` phone, pager and fax numbers
``[EMAIL]`` e-mail addresses
``[AGE]``  ages over 89 (a Safe Harbor identifier)
=========  ==============================================================

Scrubbing errs on the side of removing: a clinical word that is also the
patient's name is removed too. Measurements (``LVEF 55 %``, ``EDV 180 ml``,
``1.5 T``, ``120/80``) are kept because none of the patterns match a number
shorter than six digits that is not shaped like a date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

TAGS = ("[NAME]", "[DATE]", "[ID]", "[PHONE]", "[EMAIL]", "[AGE]")

_MONTH_WORDS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
# With a year any case matches; without one the month must be capitalized so that
# "sep 12 mm" (septum) or "may 2" stay text.
_MONTH = rf"(?i:{_MONTH_WORDS})\b\.?"
_MONTH_CAP = rf"(?:{_MONTH_WORDS}|{_MONTH_WORDS.upper()})\b\.?"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?i:st|nd|rd|th)?"
_YEAR = r"(?:(?:19|20)\d{2}|'\d{2}|\d{2}(?![\d:]))"
_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"

_DATE_PATTERNS = [
    # 2021-03-04, 2021/3/4, 2021.03.04 (+ optional time)
    rf"\b(?:19|20)\d{{2}}([-/.])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01]){_TIME}(?![\d:])",
    # 03/04/2021, 4.3.21, 04-03-2021 (day/month order unknown; same separator twice)
    r"\b(?:0?[1-9]|[12]\d|3[01])([-/.])(?:0?[1-9]|[12]\d|3[01])\1(?:(?:19|20)\d{2}|\d{2})\b(?![.,]\d)",
    # 20210304 (compact)
    r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b",
    # 12 March 2021, 12th of March, 2021, 12-Mar-2021, 12 Mar 21
    rf"\b{_DAY}(?:\s+of)?[\s\-/]*{_MONTH},?[\s\-/]*{_YEAR}\b",
    # March 12, 2021 / Mar. 12th 2021
    rf"\b{_MONTH}\s*{_DAY},?\s*{_YEAR}\b",
    # March 2021, Mar-2021
    rf"\b{_MONTH}[\s\-/,]*(?:19|20)\d{{2}}\b",
    # a misspelled month between a day and a four-digit year: 07 Jnauary 2018, Novemer 11, 2015
    rf"\b{_DAY}[\s\-/]+[A-Za-z]{{3,10}}\.?,?[\s\-/]+(?:19|20)\d{{2}}\b",
    rf"\b[A-Za-z]{{3,10}}\.?\s+{_DAY},?\s+(?:19|20)\d{{2}}\b",
    # 12 March, March 12th (no year: capitalized month only)
    rf"\b{_DAY}(?:\s+of)?[\s\-/]*{_MONTH_CAP}",
    rf"\b{_MONTH_CAP}\s*{_DAY}\b",
]
# Backreferences (\1) are per pattern, so each is compiled on its own.
_DATE_RES = [re.compile(p) for p in _DATE_PATTERNS]

_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")

_PHONE_RE = re.compile(
    r"(?:\b(?:tel|telephone|phone|pager|bleep|fax|ext|extension|mobile)\.?\s*(?:no\.?|number|#)?\s*[:#]?\s*"
    r"\+?\d[\d\s().-]{2,}\d)"
    r"|(?:(?<![\w.])\+?(?:\d{1,3}[\s.-])?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}\b)",
    re.IGNORECASE,
)

_ID_LABEL = (
    r"(?:MRN|medical\s+record(?:\s+(?:number|no\.?|#))?|record\s+(?:number|no\.?|#)|hospital\s+(?:number|no\.?)"
    r"|patient\s+(?:id|number|no\.?)|accession(?:\s+(?:number|no\.?|#))?|acc\.?\s*(?:#|no\.?)"
    r"|NHS\s+(?:number|no\.?)|SSN|study\s+id|exam\s+(?:id|number|no\.?)|case\s+(?:id|number|no\.?)|ID)"
)
_LABELED_ID_RE = re.compile(
    rf"\b(?P<label>{_ID_LABEL})(?P<sep>\s*[:#=]?\s*)(?P<value>[A-Za-z]{{0,4}}[-/]?\d[\w/-]*)", re.IGNORECASE
)
_LONG_NUMBER_RE = re.compile(r"(?<![\w.,])(?:[A-Za-z]{1,4}-?)?\d{6,}(?!\w|[.,]\d)")
_LETTER_ID_RE = re.compile(r"\b[A-Z]{1,4}-?\d{5,}\b")

_AGE_RE = re.compile(
    r"\b(?:9\d|1[0-4]\d)(?:\s*|-)(?:years?|yrs?|y/?o\b|year-old)(?:[\s-]*old)?", re.IGNORECASE
)

# Titles and labels match in any case; the name after them must be capitalized
# (or ALL CAPS), so "Dr. Smith reviewed the study" keeps "reviewed the study".
_TITLE = r"(?i:Dr|Drs|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sister|Nurse)\.?"
# Capitalized words that start clinical phrases after "Patient:" or "Referred by"
# ("Patient: Known HCM"): never taken for a name.
_NOT_NAME_WORDS = (
    "a|an|and|or|the|for|with|in|on|at|of|to|from|is|was|has|known|history|hx|prior|previous|follow|"
    "follow-up|evaluation|assessment|suspected|possible|probable|query|chest|pain|shortness|dyspnea|"
    "dyspnoea|palpitations|syncope|cardiac|cardiology|cardiomyopathy|hypertrophic|dilated|amyloidosis|"
    "amyloid|pericardial|effusion|myocardial|infarction|normal|abnormal|left|right|ventricle|ventricular|"
    "no|not|none|mri|cmr|lv|rv|hcm|hocm|dcm|mi|lge|ef|lvef|heart|failure|findings|impression|indication|"
    "clinical|technique|conclusion|comparison|summary|report|study|scan|exam|cine|male|female|man|woman|"
    "year|years|old|yo|unknown|see|team|department|radiology|hospital|clinic|date|time|age|sex|"
    "dr|drs|mr|mrs|ms|miss|mx|prof|professor|sister|nurse"
)
_NAME_WORD = rf"(?!(?i:{_NOT_NAME_WORDS})\b)(?:[A-Z][A-Za-z'\u00C0-\u017F-]+|[A-Z]\.)"
_NAME_SEQ = rf"{_NAME_WORD}(?:,?\s+{_NAME_WORD}){{0,3}}"
_TITLE_NAME_RE = re.compile(rf"\b(?P<title>{_TITLE})\s+(?P<name>{_NAME_SEQ})")
_NAME_LABEL = (
    r"(?i:(?:patient(?:'s)?\s+name|patient|name|pt\s+name|referring\s+(?:physician|doctor|clinician|provider)"
    r"|referrer|attending(?:\s+physician)?|cardiologist|radiologist|physician|reader|technologist|cc)"
    r"\s*:"
    r"|(?:(?:electronically\s+)?signed(?:\s+off)?|referred|requested|reported|dictated|read|transcribed"
    r"|reviewed|verified|approved|interpreted|performed)\s+by\s*:?)"
)
_LABELED_NAME_RE = re.compile(
    rf"(?P<label>\b{_NAME_LABEL})(?P<sep>\s*)(?:(?P<title>{_TITLE})\s+)?(?P<name>{_NAME_SEQ})"
)
_COLLAPSE_RE = re.compile(r"\[NAME\](?:[\s,^]+\[NAME\])+")
_NOT_NAMES = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "jr", "sr", "ii", "iii", "iv", "md", "phd"})


def _name_parts(name: str) -> list[str]:
    """Parts of a personal name worth removing: ``"DOE^JOHN A"`` -> ``["DOE", "JOHN"]``."""
    parts = (p.strip(".'-") for p in re.split(r"[\s,^;/]+", name or ""))
    return [p for p in parts if len(p) >= 2 and not p.isdigit() and p.lower() not in _NOT_NAMES]


def _literal(values: Iterable[str]) -> re.Pattern | None:
    """One case-insensitive, word-bounded pattern matching any of ``values`` (longest first)."""
    vals = sorted({v.strip() for v in values if v and v.strip()}, key=len, reverse=True)
    if not vals:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in vals) + r")(?!\w)", re.IGNORECASE)


def _labeled_name(m: re.Match) -> str:
    title = f"{m['title']} " if m["title"] else ""
    sep = m["sep"] or ("" if m["label"][-1].isspace() else " ")
    return f"{m['label']}{sep}{title}[NAME]"


def scrub_phi(
    text: str,
    names: Iterable[str] = (),
    identifiers: Iterable[str] = (),
    dates: Iterable[str] = (),
) -> str:
    """Return ``text`` with PHI replaced by tags (see the module docstring).

    ``names``: this report's personal names (e.g. the row's ``patient_name``), removed
    wherever any part of them occurs. ``identifiers`` (patient id, accession number)
    and ``dates`` (exam date) of this row are removed verbatim, in any case.
    """
    if not text:
        return text
    out = _EMAIL_RE.sub("[EMAIL]", text)
    for values, tag in ((dates, "[DATE]"), (identifiers, "[ID]")):
        own = _literal(values)
        if own is not None:
            out = own.sub(tag, out)
    for pattern in _DATE_RES:
        out = pattern.sub("[DATE]", out)
    out = _PHONE_RE.sub("[PHONE]", out)
    out = _LABELED_ID_RE.sub(lambda m: f"{m['label']}{m['sep']}[ID]", out)
    out = _LONG_NUMBER_RE.sub("[ID]", out)
    out = _LETTER_ID_RE.sub("[ID]", out)
    out = _AGE_RE.sub("[AGE]", out)
    own_names = _literal(p for n in names for p in _name_parts(n))
    if own_names is not None:
        out = own_names.sub("[NAME]", out)
    out = _TITLE_NAME_RE.sub(lambda m: f"{m['title']} [NAME]", out)
    out = _LABELED_NAME_RE.sub(_labeled_name, out)
    return _COLLAPSE_RE.sub("[NAME]", out)
