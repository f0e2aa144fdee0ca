"""Answers to multiple-choice questions: the one parser (free text -> option index, or None), the option
letters every prompt uses, and the likelihood rule (option scores -> index). None counts as wrong, and its
rate is reported; nothing here ever guesses.

`parse_choice` tries these in order; the first that finds anything decides, and if what it finds disagrees or
names more than one choice, the answer is None:
1. explicit containers: `<answer>C</answer>`, `\\boxed{C}`, a JSON object `{"answer": "C"}` (values parsed by
   these rules), and
2. final-answer markers: "Answer: C", "The answer is (B)", "final answer: E", "the correct option is D",
   "the best choice is B", "I choose / pick / select C"; all of these must agree (a chain of thought that
   changes its mind is ambiguous); a marker followed by more than one choice ("B or C", "B, C", "both B and
   C") is ambiguous, and so is one followed by a number or letter that reads as a word ("0 times", "A dog");
3. the whole reply is one choice: "B", "(B)", "B.", "[B]", "**B**", "`B`", "Option B", "option 2", "2";
4. the reply starts with a label: "B) a red circle", "(C) ...", "D: ...";
5. option text: exactly one option's text appears in the reply (an option contained in a longer matching
   option does not count on its own);
6. bracketed letters anywhere: "(C)" — all must agree.
A choice is a letter among the first `len(options)` of A..Z, or a number N: "option N" and a bare N are the
0-based index N (EgoSchema's "option 0".."option 4"), valid when 0 <= N < len(options). A number that begins
an option's own text ("2 people") is that option's text, not an index. A choice followed by the exact text of
a *different* option ("B) <option A's text>") is ambiguous. Markdown emphasis and code spans around a choice
are ignored.
"""
from __future__ import annotations

import json
import re
from typing import Sequence

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# one choice token: (X) [X], an upper-case letter on its own, a lower-case one before punctuation or the end,
# or a number (not a decimal, not the start of a word); after "option"/"choice"/"letter" a letter of any case
_TOK = (r"(?:\(\s*(?P<b>[A-Za-z]|\d+)\s*\)|\[\s*(?P<s>[A-Za-z]|\d+)\s*\]|(?P<u>[A-Z])(?![\w'])"
        r"|(?P<l>[a-z])(?=\s*(?:[.):,;]|$))|(?P<n>\d+)(?![\w]|[.,]\d))")
_BARE = re.compile(r"\s*" + _TOK)
_PREFIXED = re.compile(r"\s*(?i:(?:option|choice|letter)\s*(?:number\s*|no\.?\s*)?[:#]?\s*)"
                       r"(?:\(\s*(?P<b>[A-Za-z]|\d+)\s*\)|\[\s*(?P<s>[A-Za-z]|\d+)\s*\]|(?P<u>[A-Za-z])(?![\w'])"
                       r"|(?P<n>\d+)(?![\w]|[.,]\d))")
_MARKER = re.compile(
    r"(?i:final\s+answer|correct\s+(?:answer|option|choice)|(?<![\w-])answer|best\s+(?:answer|option|choice)"
    r"|(?<!\w)i(?:\s+would|\s+will|'ll)?\s+(?:choose|pick|select|go\s+with)|my\s+choice)"
    r"(?i:\s*(?:is|would\s+be|will\s+be|:|=|-)?\s*:?)")
_MORE = re.compile(r"\s*(?:,|/|&|\+|;|\bor\b|\band\b|\band/or\b|\bas\s+well\s+as\b)", re.IGNORECASE)
_BOTH = re.compile(r"\s*(?:both|either)\b", re.IGNORECASE)
_WHOLE_END = re.compile(r"\s*[.!:)\]]*\s*")
_LABEL_END = re.compile(r"\s*[).:\-]")
_BRACKETED = re.compile(r"\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]")
_TAG = re.compile(r"<answer>(.*?)</answer>|\\boxed\{([^{}]*)\}", re.IGNORECASE | re.DOTALL)
_EMPHASIS = re.compile(r"\*+|`+|(?<!\w)_+|_+(?!\w)")


def letter(i: int) -> str:
    return LETTERS[i]


def format_options(options: Sequence[str], template: str = "{letter}. {option}") -> str:
    """The options as the suite's prompts list them, one per line: "A. first option"."""
    return "\n".join(template.format(letter=LETTERS[i], option=o) for i, o in enumerate(options))


def choose_by_likelihood(sums: Sequence[float], counts: Sequence[int], reduction: str = "mean"
                         ) -> tuple[int | None, dict]:
    """The option whose text is likeliest as the reply: `reduction` "sum" of its token log-probs, or their
    "mean" (per token). A tie for the best score (e.g. two options with the same text) is None, never the first
    by position. Returns (index or None, extra): the chosen reduction's scores and both reductions."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    sums = [float(x) for x in sums]
    means = [a / max(1, int(n)) for a, n in zip(sums, counts, strict=True)]
    chosen = sums if reduction == "sum" else means
    best = max(chosen)
    winners = [i for i, x in enumerate(chosen) if x == best]
    extra = {"option_scores": [round(x, 4) for x in chosen], "option_logprob_sum": [round(x, 4) for x in sums],
             "option_logprob_mean": [round(x, 4) for x in means]}
    return (winners[0] if len(winners) == 1 else None), extra


# ------------------------------------------------------------------------------------------------- parsing
def _norm(s: str) -> str:
    return " " + " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split()) + " "


_AMBIGUOUS = object()   # found something, and it names no single option


class _Options:
    def __init__(self, options: Sequence[str]):
        self.n = len(options)
        self.normed = [_norm(o) for o in options]

    def index(self, m: re.Match) -> int | None:
        """The 0-based index a choice token names, or None if beyond the options."""
        g = next(v for v in m.groupdict().values() if v)
        i = int(g) if g.isdigit() else ord(g.upper()) - ord("A")
        return i if 0 <= i < self.n else None

    def starting(self, text: str, alone: bool = False):
        """The option whose whole text begins `text` (the longest such option), or None. `alone`: _AMBIGUOUS if
        another option's text follows it ("a red circle or a blue square")."""
        t = _norm(text)
        hits = [i for i, o in enumerate(self.normed) if o.strip() and t.startswith(o)]
        if not hits:
            return None
        i = max(hits, key=lambda i: len(self.normed[i]))
        rest = re.sub(r"^ (?:and or|or|and|as well as|then) ", " ", t[len(self.normed[i]) - 1:])
        return _AMBIGUOUS if alone and self.starting(rest) is not None else i

    def mentioned(self, text: str) -> set[int]:
        hay = _norm(text)
        hits = {i for i, o in enumerate(self.normed) if o.strip() and o in hay}
        return {i for i in hits if not any(j != i and self.normed[i] in self.normed[j] for j in hits)}


def _labelled(text: str) -> bool:
    """Does the reply start with a choice written as a choice: the whole reply, bracketed, followed by ) . : -,
    or by another choice ("B or C"), or after "both"/"either"?"""
    if _BOTH.match(text):
        return True
    m = _PREFIXED.match(text) or _BARE.match(text)
    if m is None:
        return False
    rest = text[m.end():]
    return bool(m["b"] or m["s"] or _WHOLE_END.fullmatch(rest) or _LABEL_END.match(rest)
                or ((more := _MORE.match(rest)) and (_PREFIXED.match(rest[more.end():])
                                                      or _BARE.match(rest[more.end():]))))


def _choice_at(text: str, opts: _Options):
    """What `text` names from its start: an index, _AMBIGUOUS, or None when it starts with no choice and no
    option's text. A number or a capital letter followed by words is read as a choice only where it cannot be a
    word itself: an option's text starting there wins ("2 people", "A blue square", EgoSchema's "C picks up a
    book"); a quantity ("0 times") or a word ("A dog runs", "C opens ..." when options speak of C) is ambiguous."""
    both = _BOTH.match(text)
    body = text[both.end():] if both else text
    m = _PREFIXED.match(body) or _BARE.match(body)
    by_text = opts.starting(body, alone=True)
    if by_text is _AMBIGUOUS or (both and (m is not None or by_text is not None)):
        return _AMBIGUOUS                                   # "both B and C", "a or b" as option texts
    if m is None:
        return by_text
    rest = body[m.end():]
    more = _MORE.match(rest)
    if more and (m2 := _PREFIXED.match(rest[more.end():]) or _BARE.match(rest[more.end():])) and \
            opts.index(m2) is not None:
        return _AMBIGUOUS                                   # "B or C", "B, C"
    worded = bool(re.match(r" +[A-Za-z0-9]", rest)) and not (m["b"] or m["s"])
    if worded and (m["u"] or m["n"]) and not _PREFIXED.match(body):
        if by_text is not None:
            return by_text                                  # the words are an option's text
        token = (m["u"] or m["n"]).lower()
        if m["n"] or token in ("a", "i") or any(o.split()[:1] == [token] for o in opts.normed):
            return _AMBIGUOUS                               # a quantity, an article, a person: not a choice
    i = opts.index(m)
    lab = _LABEL_END.match(rest)
    after = opts.starting(rest[lab.end():] if lab else rest)
    if i is None or (after is not None and after != i):
        return _AMBIGUOUS                                   # beyond the options; "B) <option A's text>"
    return i


def _decide(found: list) -> tuple[bool, int | None]:
    if not found:
        return False, None
    if any(f is _AMBIGUOUS for f in found) or len(set(found)) != 1:
        return True, None
    return True, found[0]


def parse_choice(text: str | None, options: Sequence[str]) -> int | None:
    """Option index named by `text`, or None if it names none or several."""
    if not isinstance(text, str) or not text.strip() or not options:
        return None
    opts = _Options(options)
    text = _EMPHASIS.sub("", text)
    # 1. containers and 2. markers: every explicit answer in the reply must agree
    found = [_AMBIGUOUS if (i := parse_choice(a or b, options)) is None else i for a, b in _TAG.findall(text)]
    found += _json_answers(text, options)
    found += [i for m in _MARKER.finditer(text) if (i := _choice_at(text[m.end():], opts)) is not None]
    decided, idx = _decide(found)
    if decided:
        return idx
    # 3. the whole reply is one choice; 4. a leading label (not a word such as the article in "A dog ...")
    if _labelled(text):
        i = _choice_at(text, opts)
        return None if i is _AMBIGUOUS else i
    # 5. option text
    hits = opts.mentioned(text)
    if hits:
        return hits.pop() if len(hits) == 1 else None
    # 6. bracketed letters anywhere
    letters = [next(g for g in m.groups() if g) for m in _BRACKETED.finditer(text)]
    idx = {ord(l.upper()) - ord("A") for l in letters}
    if len(idx) != 1:
        return None
    (i,) = idx
    return i if 0 <= i < opts.n else None


def _json_answers(text: str, options: Sequence[str]) -> list:
    """The "answer" of every JSON object in the reply (its value parsed by these rules; a number is the index)."""
    decoder, out, i = json.JSONDecoder(), [], text.find("{")
    while i >= 0:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        keys = [k for k in obj if isinstance(k, str) and k.strip().lower() in ("answer", "final_answer", "choice")] \
            if isinstance(obj, dict) else []
        for k in keys:
            v = obj[k]
            if isinstance(v, int) and not isinstance(v, bool):
                out.append(v if 0 <= v < len(options) else _AMBIGUOUS)
            elif isinstance(v, str):
                out.append(_AMBIGUOUS if (j := parse_choice(v, options)) is None else j)
            else:
                out.append(_AMBIGUOUS)
        i = text.find("{", end)
    return out
