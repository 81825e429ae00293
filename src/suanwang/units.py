"""Units: money is integer fen (CNY), compute is PFLOPS of dense FP16/BF16 (the report's 非稀疏算法)."""

from __future__ import annotations

from decimal import Decimal

FEN_PER_YUAN = 100
SECONDS_PER_HOUR = 3600
TFLOPS_PER_PFLOPS = 1000


def yuan_to_fen(yuan: int) -> int:
    """Whole yuan to fen; fractional yuan must be given in fen by the caller, never as a float."""
    if isinstance(yuan, bool) or not isinstance(yuan, int):
        raise TypeError("yuan must be an int; give fractional amounts in fen")
    return yuan * FEN_PER_YUAN


def parse_yuan(text: str) -> int | None:
    """'1200', '1200.5', '¥1,200.50' → fen, exactly (no float); None if it is not such an amount.
    A minus sign is allowed; more than two decimals is not (there is no smaller unit than the fen)."""
    value = text.strip().replace(",", "").replace("¥", "").replace("￥", "")
    sign = -1 if value.startswith("-") else 1
    value = value.lstrip("+-")
    whole, dot, cents = value.partition(".")
    if not whole.isdigit() or (dot and not (cents.isdigit() and len(cents) <= 2)):
        return None
    return sign * (int(whole) * FEN_PER_YUAN + int((cents or "0").ljust(2, "0")))


def format_fen(amount_fen: int) -> str:
    """12345 -> '¥123.45' without any float arithmetic."""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}¥{yuan:,}.{fen:02d}"


def pflops(cards: int, dense_tflops_per_card: Decimal) -> Decimal:
    """Capacity in PFLOPS = cards × dense TFLOPS per card / 1000."""
    return Decimal(cards) * dense_tflops_per_card / TFLOPS_PER_PFLOPS
