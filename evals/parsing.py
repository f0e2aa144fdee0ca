"""The one answer parser: free text -> option index, or None (unparseable counts as wrong, never guessed).

Tried in order, the first rule that finds anything decides; if what it finds disagrees, the answer is None:
1. explicit final-answer markers ("Answer: C", "The answer is (B)", "final answer: E", "correct option is D");
   several markers must agree — a CoT that changes its mind is ambiguous;
2. the whole reply is a letter: "B", "(B)", "B.", "[B]";
3. the reply starts with a letter label: "B) a red circle", "(C) ...", "D: ...";
4. option text: exactly one option's text appears in the reply (an option contained in a longer
   matching option does not count on its own);
5. bracketed letters anywhere: "(C)" — all must agree.
Letters run over the first `len(options)` letters of A..Z.
"""
from __future__ import annotations

import re
from typing import Sequence

_LETTER = r"(?:\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]|([A-Z])(?![\w'])|([a-z])(?=\s*(?:[.):]|$)))"
_MARKER = re.compile(  # keywords in any case; the letter itself by _LETTER's case rules
    r"(?i:final\s+answer|correct\s+(?:answer|option|choice)|(?<!\w)answer|best\s+(?:answer|option))"
    r"(?i:\s*(?:is|would\s+be|:|=|-)?\s*(?:option|choice|letter)?\s*:?\s*)" + _LETTER)
_WHOLE = re.compile(r"^\s*(?:option\s+)?[(\[]?\s*([A-Za-z])\s*[)\].:]?\s*$", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:option\s+)?(?:\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]|([A-Z])\s*[).:])(?:\s|$)")
_BRACKETED = re.compile(r"\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]")


def _norm(s: str) -> str:
    return " " + " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split()) + " "


def _decide(letters: list[str], n: int) -> tuple[bool, int | None]:
    """(found anything, index or None). Letters beyond the n options make the answer None."""
    if not letters:
        return False, None
    idx = {ord(l.upper()) - ord("A") for l in letters}
    if len(idx) != 1:
        return True, None
    (i,) = idx
    return True, (i if 0 <= i < n else None)


def _groups(matches) -> list[str]:
    return [next(g for g in m.groups() if g) for m in matches]


def parse_choice(text: str | None, options: Sequence[str]) -> int | None:
    """Option index named by `text`, or None if it names none or several."""
    if not text or not text.strip() or not options:
        return None
    n = len(options)
    found, idx = _decide(_groups(_MARKER.finditer(text)), n)
    if found:
        return idx
    for rx in (_WHOLE, _LABEL):
        m = rx.match(text)
        if m:
            return _decide(_groups([m]), n)[1]
    hay = _norm(text)
    normed = [_norm(o) for o in options]
    hits = {i for i, o in enumerate(normed) if o.strip() and o in hay}
    hits = {i for i in hits if not any(j != i and normed[i] in normed[j] for j in hits)}
    if hits:
        return hits.pop() if len(hits) == 1 else None
    return _decide(_groups(_BRACKETED.finditer(text)), n)[1]


def letter(i: int) -> str:
    return chr(ord("A") + i)
