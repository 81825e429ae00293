"""Rating (pure): metered usage × the rate card in force when it happened → a charge in fen.

The rule, stated once:
- A usage record covers [started_at, ended_at) on `cards` cards of one pool. Its billable seconds are
  its card-seconds divided by its cards, rounded UP to the billing increment (default 1 s), so a
  60-second increment bills 61 s as 120 s. Its billable card-seconds are cards × billable seconds.
- Usage that spans a price change is split at the change; each piece is priced at its card's price.
  Billable seconds beyond the wall-clock interval (the increment's round-up) take the price in force
  at the end.
- Amounts are kept exact (fractions of a fen) until the end and rounded once per job, half up to the
  fen. A job's charge is the sum over its usage records, rounded once.
- Time with no price in force is an error (no pool runs without a price; a gap is a data problem
  that must be fixed, not silently billed at zero).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from suanwang.supply.pricing import Interval, price_at

SECONDS_PER_HOUR = 3600


@dataclass(frozen=True, slots=True)
class Usage:
    """What rating needs of one usage record."""

    cards: int
    started_at: datetime
    ended_at: datetime
    card_seconds: int


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of one usage record at one price."""

    start: datetime
    end: datetime
    card_seconds: int
    price_fen_per_card_hour: int
    amount: Fraction  # exact fen


@dataclass(frozen=True, slots=True)
class Rated:
    pieces: tuple[Piece, ...]
    amount_exact: Fraction
    amount_fen: int  # rounded once, half up

    @property
    def card_seconds(self) -> int:
        return sum(p.card_seconds for p in self.pieces)


class RatingError(ValueError):
    """Usage that cannot be priced: a time with no rate card in force."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        super().__init__(f"no price in force at {at.isoformat()}")


def round_half_up(value: Fraction) -> int:
    """Round a non-negative exact amount to whole fen, halves up."""
    if value < 0:
        raise ValueError("amounts to rate are never negative")
    return int(value + Fraction(1, 2))  # int() truncates toward zero: floor for non-negatives


def billable_seconds(usage: Usage, increment_s: int = 1) -> int:
    """The usage's seconds per card, rounded up to the increment."""
    if increment_s < 1:
        raise ValueError("the billing increment is at least one second")
    if usage.cards <= 0 or usage.card_seconds <= 0:
        return 0
    seconds = -(-usage.card_seconds // usage.cards)  # ceil: a fraction of a second is billed
    return -(-seconds // increment_s) * increment_s


def rate_usage(usage: Usage, cards: Sequence[Interval], increment_s: int = 1) -> tuple[Piece, ...]:
    """Split one usage record at price changes and price each piece exactly.

    Billable seconds are laid out from `started_at`; seconds beyond `ended_at` (the increment's
    round-up) take the price in force at the end of the interval.
    """
    seconds = billable_seconds(usage, increment_s)
    if seconds == 0:
        return ()
    last = max(usage.started_at, usage.ended_at - timedelta(microseconds=1))
    pieces: list[Piece] = []
    cursor, left = usage.started_at, seconds
    while left > 0:
        at = min(cursor, last)
        card = price_at(cards, at)
        if card is None:
            raise RatingError(at)
        if card.end is None or cursor >= last:
            take = left
        else:  # up to the price change (whole seconds), or to the end of the usage
            take = min(left, max(1, math.ceil((card.end - cursor).total_seconds())))
        card_seconds = take * usage.cards
        pieces.append(
            Piece(
                start=cursor,
                end=cursor + timedelta(seconds=take),
                card_seconds=card_seconds,
                price_fen_per_card_hour=card.price_fen_per_card_hour,
                amount=Fraction(card_seconds * card.price_fen_per_card_hour, SECONDS_PER_HOUR),
            )
        )
        cursor += timedelta(seconds=take)
        left -= take
    return tuple(pieces)


def rate(usages: Iterable[Usage], cards: Sequence[Interval], increment_s: int = 1) -> Rated:
    """A job's charge on one pool: every usage record priced, the total rounded once, half up."""
    pieces = tuple(piece for usage in usages for piece in rate_usage(usage, cards, increment_s))
    exact = sum((piece.amount for piece in pieces), Fraction(0))
    return Rated(pieces=pieces, amount_exact=exact, amount_fen=round_half_up(exact))


def largest_remainder(total: int, weights: Sequence[Fraction]) -> list[int]:
    """Split `total` fen over parts in proportion to `weights`, in whole fen that add up exactly: each
    part gets the floor of its share and the parts with the largest remainders one fen more."""
    if not weights:
        return []
    whole = sum(weights, Fraction(0))
    shares = [Fraction(total) * w / whole if whole else Fraction(total, len(weights)) for w in weights]
    floors = [math.floor(share) for share in shares]
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    return floors
