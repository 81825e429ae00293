"""Unified social credit code (统一社会信用代码), GB 32100-2015.

18 characters from a 31-character alphabet (digits and upper-case letters without I, O, Z, S, V):
1 registration authority, 1 organisation kind, 6 digits of the administrative division (GB/T 2260),
9 characters of the organisation code, and a check character: with weights w_i = 3^i mod 31,
check = (31 - Σ value_i·w_i mod 31) mod 31. Because 31 is prime and no weight is 0 mod 31, any single
substituted character changes the sum, so every single-character corruption is caught.
"""

from __future__ import annotations

from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
LENGTH = 18


@dataclass(frozen=True, slots=True)
class CreditCodeError:
    """Why a code is invalid: a message key and its parameters (rendered in the user's language)."""

    key: str
    params: dict[str, object]


def check_character(first17: str) -> str:
    """The check character for the first 17 characters (which must be in the alphabet)."""
    total = sum(VALUE[ch] * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def problem(code: str) -> CreditCodeError | None:
    """None when `code` is a valid credit code, else why not."""
    if len(code) != LENGTH:
        return CreditCodeError("credit-code.length", {"length": len(code)})
    for position, ch in enumerate(code, start=1):
        if ch.islower() and ch.upper() in VALUE:
            return CreditCodeError("credit-code.lowercase", {"position": position, "char": ch})
        if ch not in VALUE:
            return CreditCodeError("credit-code.character", {"position": position, "char": ch})
    if not code[2:8].isdigit():
        return CreditCodeError("credit-code.division", {"division": code[2:8]})
    expected = check_character(code[:17])
    if code[17] != expected:
        return CreditCodeError("credit-code.check", {"got": code[17], "expected": expected})
    return None


def is_valid(code: str) -> bool:
    return problem(code) is None


def division_code(code: str) -> str:
    """The administrative division (GB/T 2260) of the registering authority: characters 3-8."""
    return code[2:8]


def complete(first17: str) -> str:
    """Append the check character: how demo data and tests make valid codes."""
    return first17 + check_character(first17)
