"""Rate-card rules (pure): which price is in force at a time, and how a new card fits the history.

A pool's cards are half-open intervals [start, end) that never overlap; end None means "until the next
card". Adding a card that starts after an open-ended one closes that one at the new start (a price
change). History is never rewritten: a change may not alter the price of time already past.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Interval:
    card_id: int
    price_fen_per_card_hour: int
    start: datetime
    end: datetime | None  # None: open-ended

    def covers(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


@dataclass(frozen=True, slots=True)
class PricingError(Exception):
    key: str
    params: dict[str, object]


@dataclass(frozen=True, slots=True)
class Placement:
    """How a new card fits: the open-ended card to close at the new start, if any."""

    close_card_id: int | None


def price_at(cards: Iterable[Interval], at: datetime) -> Interval | None:
    """The card in force at `at`, or None when the pool has no price then."""
    return next((card for card in cards if card.covers(at)), None)


def _overlaps(a_start: datetime, a_end: datetime | None, b_start: datetime, b_end: datetime | None) -> bool:
    return (b_end is None or a_start < b_end) and (a_end is None or b_start < a_end)


def place(cards: Sequence[Interval], *, start: datetime, end: datetime | None, now: datetime) -> Placement:
    """Check a new card [start, end) against the pool's cards; raise PricingError if it cannot be added."""
    if end is not None and end <= start:
        raise PricingError("price.empty-interval", {"start": start.isoformat(), "end": end.isoformat()})
    close: Interval | None = None
    for card in cards:
        if card.end is None and card.start < start:
            close = card  # a price change: the open-ended card ends where the new one starts
            continue
        if _overlaps(start, end, card.start, card.end):
            raise PricingError(
                "price.overlap",
                {
                    "card_id": card.card_id,
                    "start": card.start.isoformat(),
                    "end": card.end.isoformat() if card.end else "∞",
                },
            )
    if close is not None and start < now:
        raise PricingError("price.retroactive", {"start": start.isoformat(), "now": now.isoformat()})
    return Placement(close_card_id=close.card_id if close else None)


def check_retire(card: Interval, *, now: datetime) -> None:
    """Only a card not yet in force may be withdrawn; one in force is history."""
    if card.start <= now:
        raise PricingError("price.in-force", {"card_id": card.card_id, "start": card.start.isoformat()})
