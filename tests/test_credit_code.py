"""The unified social credit code validator (GB 32100-2015), tested as a pure function.

The oracle below is written from the standard's own table of weights, not from the module under test.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanwang.tenants import credit_code
from suanwang.tenants.credit_code import check_character, complete, is_valid, problem

# GB 32100-2015, table of weights for positions 1..17 and the 31-character code alphabet.
STANDARD_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
STANDARD_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
FORBIDDEN_LETTERS = "IOSVZ"


def oracle_check(first17: str) -> str:
    total = sum(STANDARD_ALPHABET.index(ch) * w for ch, w in zip(first17, STANDARD_WEIGHTS, strict=True))
    return STANDARD_ALPHABET[(31 - total % 31) % 31]


code_char = st.sampled_from(STANDARD_ALPHABET)
digit = st.sampled_from(string.digits)


@st.composite
def prefixes(draw: st.DrawFn) -> str:
    """17 characters: registration authority and kind, 6-digit division, 9-character organisation code."""
    head = draw(st.text(code_char, min_size=2, max_size=2))
    division = draw(st.text(digit, min_size=6, max_size=6))
    org = draw(st.text(code_char, min_size=9, max_size=9))
    return head + division + org


valid_codes = prefixes().map(complete)

# Anything that might be typed in place of a character: other code characters, lower case,
# the letters the standard leaves out, punctuation, spaces, full-width and other non-ASCII.
replacement = st.one_of(
    code_char,
    st.sampled_from(string.ascii_lowercase),
    st.sampled_from(FORBIDDEN_LETTERS),
    st.sampled_from(string.punctuation + " \t"),
    st.sampled_from("０１２ＡＢＩＯ一二ıſ"),
    st.characters(min_codepoint=0x21, max_codepoint=0x2FFF),
)


def test_alphabet_and_weights_match_the_standard():
    assert credit_code.ALPHABET == STANDARD_ALPHABET
    assert credit_code.WEIGHTS == STANDARD_WEIGHTS
    assert not set(FORBIDDEN_LETTERS) & set(credit_code.ALPHABET)


@pytest.mark.parametrize(
    "code",
    [
        "914403001922038216",  # published on business licences; check characters 0-9 and letters
        "91330100716105852F",
        "91440300708461136T",
        "91110000600037341L",
        "91350100M000100Y43",
        "91110108551385082Q",
    ],
)
def test_published_codes_are_valid(code):
    assert problem(code) is None
    assert check_character(code[:17]) == code[17]


@settings(max_examples=300)
@given(prefixes())
def test_check_character_agrees_with_the_standard(prefix):
    assert check_character(prefix) == oracle_check(prefix)


@settings(max_examples=300)
@given(valid_codes)
def test_completed_codes_are_accepted(code):
    assert len(code) == 18
    assert problem(code) is None
    assert is_valid(code)
    assert credit_code.division_code(code) == code[2:8]


@settings(max_examples=500)
@given(valid_codes, st.integers(min_value=0, max_value=17), replacement)
def test_any_single_character_substitution_is_rejected(code, position, char):
    corrupted = code[:position] + char + code[position + 1 :]
    if corrupted == code:
        return  # not a corruption (hypothesis drew the same character)
    assert len(corrupted) == 18
    assert not is_valid(corrupted), corrupted
    assert problem(corrupted) is not None


@settings(max_examples=300)
@given(valid_codes, st.integers(min_value=0, max_value=16), st.data())
def test_substituting_another_code_character_fails_the_check(code, position, data):
    allowed = string.digits if 2 <= position <= 7 else STANDARD_ALPHABET
    char = data.draw(st.sampled_from(allowed).filter(lambda c: c != code[position]))
    corrupted = code[:position] + char + code[position + 1 :]
    why = problem(corrupted)
    assert why is not None
    assert why.key == "credit-code.check"
    assert why.params == {"got": code[17], "expected": oracle_check(corrupted[:17])}
    assert why.params["expected"] != code[17]


@settings(max_examples=200)
@given(valid_codes)
def test_a_wrong_check_character_is_rejected_with_the_expected_one(code):
    for wrong in STANDARD_ALPHABET:
        if wrong == code[17]:
            continue
        why = problem(code[:17] + wrong)
        assert why is not None and why.key == "credit-code.check"
        assert why.params["expected"] == code[17]


@settings(max_examples=200)
@given(valid_codes, st.data())
def test_lower_case_letters_are_rejected_with_their_position(code, data):
    letters = [i for i, ch in enumerate(code) if ch.isalpha()]
    if not letters:
        code = code[:8] + "A" + code[9:17]
        code = complete(code)
        letters = [8]
    position = data.draw(st.sampled_from(letters))
    lowered = code[:position] + code[position].lower() + code[position + 1 :]
    why = problem(lowered)
    assert why is not None
    assert why.key == "credit-code.lowercase"
    assert why.params == {"position": position + 1, "char": code[position].lower()}


@settings(max_examples=200)
@given(valid_codes, st.integers(min_value=0, max_value=17), st.sampled_from(FORBIDDEN_LETTERS))
def test_letters_the_standard_leaves_out_are_rejected(code, position, letter):
    corrupted = code[:position] + letter + code[position + 1 :]
    why = problem(corrupted)
    assert why is not None
    assert why.key == "credit-code.character"
    assert why.params == {"position": position + 1, "char": letter}


@settings(max_examples=200)
@given(valid_codes, st.integers(min_value=2, max_value=7), st.sampled_from("ABCDEFGHJKLMNPQRTUWXY"))
def test_a_letter_in_the_division_code_is_rejected(code, position, letter):
    corrupted = code[:position] + letter + code[position + 1 :]
    why = problem(corrupted)
    assert why is not None
    assert why.key == "credit-code.division"


@settings(max_examples=300)
@given(st.text(code_char, max_size=40).filter(lambda s: len(s) != 18))
def test_wrong_lengths_are_rejected(text):
    why = problem(text)
    assert why is not None
    assert why.key == "credit-code.length"
    assert why.params == {"length": len(text)}


@settings(max_examples=200)
@given(valid_codes, st.integers(min_value=1, max_value=17))
def test_truncated_or_extended_codes_are_rejected(code, cut):
    assert not is_valid(code[:-cut])
    assert not is_valid(code + code[:cut])
    assert not is_valid(" " + code)
    assert not is_valid(code + "\n")


@settings(max_examples=200)
@given(valid_codes, st.integers(min_value=0, max_value=15))
def test_swapping_two_different_neighbours_before_the_check_character_is_caught(code, i):
    """(a - b)(w_i - w_{i+1}) is never 0 mod 31 for a != b: neighbouring weights always differ."""
    if code[i] == code[i + 1]:
        return
    swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
    assert not is_valid(swapped)
