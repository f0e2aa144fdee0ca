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
    ("B) a blue square", 1),       # the label and its own option's text
    ("(C) a green triangle", 2),
    ("B) the square, I think", 1),  # the label, then text that is no option's exact text
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
    "B) a red circle",                               # label B, then option A's exact text
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


@pytest.mark.parametrize("text, expected", [
    # Markdown emphasis and code spans around a choice
    ("**B**", 1),
    ("The answer is **C**.", 2),
    ("`D`", 3),
    ("__A__", 0),
    ("Answer: *E*", 4),
    # containers
    ("<answer>B</answer>", 1),
    ("Reasoning first... <answer> (D) </answer>", 3),
    ("<answer>a green triangle</answer>", 2),
    ('{"answer": "C"}', 2),
    ('Here is my reply: {"answer": "B", "confidence": 0.8}', 1),
    ('{"answer": 3}', 3),                          # a JSON number is the 0-based index
    # first-person and "best choice" markers
    ("I choose B.", 1),
    ("I would pick (C)", 2),
    ("I select option D", 3),
    ("The best choice is E", 4),
    ("I'll go with A", 0),
])
def test_common_single_answer_formats(text, expected):
    assert parse_choice(text, SHAPES) == expected


EGO = ["c cuts the onion", "c washes the pan", "c stirs the soup", "c reads a book", "c opens the fridge"]


@pytest.mark.parametrize("text, expected", [
    ("option 2", 2),                 # EgoSchema names its options "option 0".."option 4": 0-based
    ("Option 0", 0),
    ("The answer is option 4.", 4),
    ("2", 2),
    ("Answer: 1", 1),
    ("(3)", 3),
    ("option 5", None),              # beyond the five options
    ("5", None),
    ("Answer: 7", None),
    ("option 2: c stirs the soup", 2),
    ("option 2: c washes the pan", None),   # index 2, then option 1's exact text
])
def test_numbered_options_are_zero_based(text, expected):
    assert parse_choice(text, EGO) == expected


COUNTS = ["2 people", "3 people", "4 people", "5 people"]


@pytest.mark.parametrize("text, expected", [
    ("3 people", 1),                 # a digit inside an option's text is that text, not index 3
    ("There are 3 people.", 1),
    ("The answer is 4 people", 2),
    ("Answer: 2", 2),                # a bare number is an index
    ("5", None),                     # index 5 does not exist (4 options); "5 people" is not what was written
])
def test_digits_in_option_text(text, expected):
    assert parse_choice(text, COUNTS) == expected


@pytest.mark.parametrize("text", [
    # a marker followed by more than one choice
    "The answer is B or C",
    "Answer: B, C",
    "Answer: (B), (C)",
    "The answer is both B and D",
    "answer: either A or E",
    "The answer is B/C",
    "Answer: option 1 or option 2",
    "I choose A and B",
    "The answer is a red circle or a blue square",
    # a choice followed by a different option's text
    "Answer: B) a red circle",
    "The answer is C. a black line",
    "(A) a blue square",
    # containers that disagree or hold nothing usable
    "<answer>B</answer> ... <answer>C</answer>",
    "<answer>not sure</answer>",
    '{"answer": "B or C"}',
    '{"answer": 9}',
    '{"answer": null}',
    # leading choices that are several
    "B or C",
    "A, B",
    "both (A) and (C)",
    # markers that disagree, letters and numbers beyond the options
    "I choose B. Final answer: C",
    "option 7",
    "Answer: G",
])
def test_never_guess(text):
    assert parse_choice(text, SHAPES) is None


ARTICLES = ["a red circle", "a blue square", "a green triangle", "a yellow star", "a black line"]
PEOPLE = ["one person", "two people", "three people", "four people", "five people"]
CAMERA = ["C cuts the onion", "C reads a book", "C stirs the soup", "C opens the fridge", "C washes the pan"]


@pytest.mark.parametrize("text, options, expected", [
    # after a marker, a number or capital letter followed by words is a choice only where it cannot be a word
    ("The answer is 2 people", PEOPLE, None),          # a quantity, not index 2
    ("Answer: 0 times", PEOPLE, None),
    ("Answer: A dog runs", ARTICLES, None),             # the article
    ("Answer: C picks up a book", CAMERA, None),        # EgoSchema's C is the camera wearer
    ("Answer: C reads a book", CAMERA, 1),              # ... and this is option 1's whole text
    ("Answer: A blue square", ARTICLES, 1),             # the article, then option 1's text
    ("The answer is B because the square appears", ARTICLES, 1),
    ("The answer is C, a green triangle.", ARTICLES, 2),
    ("The answer is C, a red circle.", ARTICLES, None),  # C, then option A's text
    # every explicit answer must agree, containers and markers alike
    ('The answer is B.\n{"answer": "C"}', ARTICLES, None),
    ("<answer>B</answer>\nFinal answer: C", ARTICLES, None),
    ("<answer>B</answer>\nFinal answer: B", ARTICLES, 1),
    ('{"step": {"n": 1}} and then {"answer": "D"}', ARTICLES, 3),
    ("\\boxed{B}", ARTICLES, 1),
])
def test_words_after_a_marker_and_agreement_of_explicit_answers(text, options, expected):
    assert parse_choice(text, options) == expected


def test_likelihood_rule_ties_are_not_guessed():
    from evals.parsing import choose_by_likelihood

    assert choose_by_likelihood([-3.0, -1.0, -2.0], [3, 1, 1], "sum")[0] == 1
    assert choose_by_likelihood([-3.0, -1.5, -2.0], [6, 1, 1], "mean")[0] == 0     # -0.5 per token
    i, extra = choose_by_likelihood([-1.0, -2.0, -1.0], [1, 1, 1], "sum")      # two options, same text
    assert i is None and extra["option_logprob_sum"] == [-1.0, -2.0, -1.0]
    with pytest.raises(ValueError, match="reduction"):
        choose_by_likelihood([-1.0], [1], "max")


def test_no_options():
    assert parse_choice("A", []) is None


@pytest.mark.parametrize("i, expected", [(0, "A"), (1, "B"), (4, "E")])
def test_letter(i, expected):
    assert letter(i) == expected
