"""The left-ventricular ejection fraction as a report states it ("LVEF 55 %", "EF of 35%").

Deterministic for every backend: the LVEF column of ``labels.csv`` is what the text
says, never a model's guess. Right-ventricular values (RVEF, "RV ejection fraction")
are skipped; a typo in "ejection fraction" is tolerated; a range ("50-55 %") gives its midpoint; a fraction ("EF 0.55") is read
as percent; the first LV statement wins ("LVEF 35 % (previously 50 %)" -> 35), except that
a value the report attributes to another study ("LVEF 30% on echo", "previous EF 40%")
counts only when the report states no other, and a bare "EF" in a right-ventricular field
line ("RV: dilated, EF 49%") is the RV's unless the line names the LV before it.
"""

from __future__ import annotations

import re

# "ejection fraction" with room for one typo per word ("ejectoin fraction").
_EJECTION_FRACTION = r"ej\w{4,7}[\s-]+fr\w{4,7}"
_LABEL = (
    r"(?<![\w-])(?<!RV )(?<!RV-)(?<!right ventricular )(?<!right ventricle )(?<!right )"
    rf"(?:LV\s*EF|LVEF|L\.V\.E\.F\.?|left[\s-]+ventric(?:ular|le)\s+(?:systolic\s+)?{_EJECTION_FRACTION}"
    rf"|LV\s+(?:systolic\s+)?{_EJECTION_FRACTION}|{_EJECTION_FRACTION}|EF)(?![A-Za-z])"  # not "effusion"
)
# Words may stand between the label and the number ("is preserved at", "(biplane):"),
# but not another measurement or a sentence end.
_GAP = (
    r"(?:(?!\b(?:RV|RVEF|EDV|ESV|SV|CO|mass|volume|index|previous(?:ly)?|prior|baseline)\b)"
    r"[^\d\n.;]|\.(?!\s)){0,40}?"
)
_NUMBER = r"(\d{1,2}(?:\.\d+)?|0?\.\d+|100)"
_LVEF_RE = re.compile(
    rf"{_LABEL}{_GAP}{_NUMBER}(?:\s*%?\s*(?:-|–|to)\s*{_NUMBER})?\s*(%|percent|pct)?(?!\s*(?:ml|mL|mm|cm|g\b|bpm|/|\d)|\.\d)",
    re.IGNORECASE,
)


# Another study's value: "previous EF 40%", "prior LVEF 45%", "echo EF 45%" / "LVEF 30% on echo".
_OTHER_BEFORE_RE = re.compile(r"\b(?:previous(?:ly)?|prior|old|baseline|echo\w*|TTE|TOE|SPECT|MUGA)\s*[:(]?\s*$",
                              re.IGNORECASE)  # "previous EF 40%", "(echo EF 45%)"
# A bare "EF" / "ejection fraction" in a right-ventricular field line: "RV: dilated, EF 49%".
_RV_FIELD_RE = re.compile(r"^\s*(?:[-*\u2022]\s*)?(?:RV|right[\s-]+ventric\w*|right[\s-]+heart)\b[^:\n]{0,30}:",
                          re.IGNORECASE)
_BARE_RE = re.compile(r"EF|ej", re.IGNORECASE)
_LV_RE = re.compile(r"(?<![\w-])(?:LV|left[\s-]+ventric\w*)(?!\w)", re.IGNORECASE)
_OTHER_AFTER_RE = re.compile(r"^\s*(?:on|by|at|from)\s+(?:the\s+)?(?:echo\w*|TTE|TOE|CT|SPECT|MUGA|angio\w*|"
                             r"ventriculograph\w*|previous|prior)\b", re.IGNORECASE)


def parse_lvef(text: str) -> float | None:
    """The first left-ventricular EF stated in ``text``, in percent (one decimal), or None."""
    text = text or ""
    other = None
    for m in _LVEF_RE.finditer(text):
        low = float(m[1])
        high = float(m[2]) if m[2] else low
        value = (low + high) / 2
        if value < 1 and "." in m[1] and not m[3]:
            value *= 100
        if 1 <= value <= 95:
            line = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
            if _BARE_RE.match(m[0]) and _RV_FIELD_RE.match(line) and not _LV_RE.search(line):
                continue  # the RV's (unless the LV is named before it: "RV: normal. LV normal, EF 63%")
            if _OTHER_BEFORE_RE.search(text[max(0, m.start() - 20):m.start()]) or _OTHER_AFTER_RE.match(text[m.end():]):
                other = other if other is not None else round(value, 1)
                continue
            return round(value, 1)
    return other
