"""evals.parsing.parse_choice: free text -> option index, or None (never a guess)."""
from __future__ import annotations

import pytest

from evals.parsing import letter, parse_choice

SHAPES = ["a red circle", "a blue square", "a green triangle", "a yellow star", "a black line"]
COLORS = ["red", "dark red", "blue"]

COT = (
    "Let's go through the options. Option A, a red circle, appears at the start but leaves the frame "
    "after a few seconds. (B) a blue square is never shown. Option D seems unlikely because the star is "
    "only visible in one shot, and E is not mentioned at all. The green triangle is on screen from the "
    "beginning until the very end.\nTherefore, the answer is C."
)


@pytest.mark.parametrize("text, expected", [
    # a bare letter, with or without brackets/punctuation, any case
    ("B", 1),
    ("(B)", 1),
    ("b.", 1),
    ("[C]", 2),
    ("  D  ", 3),
    ("e", 4),
    ("Option B", 1),
    # explicit answer markers
    ("Answer: C", 2),
    ("The answer is E", 4),
    ("the answer is (d)", 3),
    ("Final answer: A", 0),
    ("The correct option is D.", 3),
    ("answer: (b)", 1),
    # a letter label followed by the option text
    ("B) a red circle", 1),        # the label decides, not the (mismatching) text
    ("(C) a green triangle", 2),
    ("D: a yellow star", 3),
    # option text
    ("a blue square", 1),
    ("I think it is a green triangle.", 2),
    ("A Yellow Star!", 3),
    # chain of thought discussing several options, then a final marker
    (COT, 2),
])
def test_parse_choice_finds_answer(text, expected):
    assert parse_choice(text, SHAPES) == expected


@pytest.mark.parametrize("text", [
    "Answer: A ... Answer: B",                      # markers disagree: the CoT changed its mind
    "The answer is A. On reflection, the final answer is B.",
    "F",                                            # beyond the 5 options
    "(F)",
    "Answer: F",
    "",
    "   ",
    None,
    "The weather is nice today.",                    # unrelated
    "I am not sure, it could be anything.",
    "A dog jumped over the fence",                   # the article "A" is not option A
    "It is either a red circle or a blue square.",  # two options' texts
    "Maybe (A) or (B), hard to say",                 # bracketed letters that disagree
])
def test_parse_choice_none(text):
    assert parse_choice(text, SHAPES) is None


@pytest.mark.parametrize("text, expected", [
    ("dark red", 1),            # "red" is contained in "dark red": the longer match wins
    ("Dark red.", 1),
    ("The colour is dark red.", 1),
    ("red", 0),
    ("It is red.", 0),
    ("blue", 2),
    ("dark red or blue", None),  # two distinct options
])
def test_parse_choice_substring_options(text, expected):
    assert parse_choice(text, COLORS) == expected


@pytest.mark.parametrize("options, expected", [
    (["dog", "cat", "bird"], None),                                # no option mentioned at all
    (["a blue square", "a green triangle", "a yellow star"], None),
    (["a blue square", "a red circle", "a green triangle"], 1),   # the text matches option B, not A
    (["a red circle", "a blue square"], 0),                       # genuinely option A's text
])
def test_leading_article_is_not_letter_a(options, expected):
    assert parse_choice("A red circle moved", options) == expected


@pytest.mark.parametrize("text, n, expected", [
    ("C", 3, 2),
    ("D", 3, None),            # letter beyond the number of options
    ("Answer: D", 3, None),
    ("(D)", 3, None),
    ("D) something", 3, None),
    ("B", 2, 1),
    ("C", 2, None),
])
def test_letter_beyond_options(text, n, expected):
    assert parse_choice(text, [f"choice number {i}" for i in range(n)]) == expected


def test_no_options():
    assert parse_choice("A", []) is None


@pytest.mark.parametrize("i, expected", [(0, "A"), (1, "B"), (4, "E")])
def test_letter(i, expected):
    assert letter(i) == expected
