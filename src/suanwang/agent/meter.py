"""PURE: a running job's card samples → its usage, and the usage CloudEvent the agent reports.

No I/O and no clock: samples carry monotonic seconds, the caller gives the job's start and end. The
meter keeps a few numbers per card, not the samples, so a job of weeks sampled every second costs the
same memory as a job of a minute.

Rules, per card of the job:
- A sample of a card outside the job (when the meter knows the job's cards), from before the job
  started, or not later than that card's previous sample (a repeat: re-delivered or read at the same
  instant) is ignored.
- Energy is the total-energy counter's growth from the first sample to the last. A counter that goes
  backwards was reset (driver reload): it restarted from 0, so its new reading is what was used since.
  Energy is never negative. A card that never showed a counter makes the job's energy unknown (None),
  never a partial sum.
- Utilization is time-weighted by the trapezoid rule between consecutive samples of a card (NVML's
  figure is an average over a short recent window, closer to a point reading than to a level held
  until the next sample), pooled over the job's cards by card-time. An interval with an unknown end
  (a MIG card) adds nothing. Where no interval has length, it is the plain mean of the readings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from suanwang.agent.gpu import CardSample
from suanwang.timeutil import require_aware

EVENT_TYPE = "cn.suanwang.usage.v1"
SPEC_VERSION = "1.0"
MAX_EXTERNAL_ID = 200  # CloudEvent ids and sources the server accepts (fields.ExternalId)
MAX_LAUNCH_NAME = 64


@dataclass(frozen=True, slots=True)
class JobUsage:
    cards: int
    started_at_s: float  # monotonic seconds
    ended_at_s: float
    card_seconds: int
    mean_utilization_pct: float | None
    peak_utilization_pct: int | None
    peak_memory_mib: int | None
    energy_j: int | None
    cpu_seconds: int | None


def card_seconds(cards: int, seconds: float) -> int:
    """Cards × wall seconds, rounded as `Observation.card_seconds` rounds (Python's round: ties to even)."""
    return round(cards * max(0.0, seconds))


def joules(millijoules: int) -> int:
    """Whole joules, rounded half up; rounding happens once, on the job's total."""
    if millijoules < 0:
        raise ValueError(f"energy cannot be negative ({millijoules} mJ)")
    return (millijoules + 500) // 1000


@dataclass(slots=True)
class _Card:
    """What one card of the job has shown so far."""

    last_at_s: float | None = None
    last_utilization_pct: int | None = None
    last_energy_mj: int | None = None
    energy_mj: int = 0
    utilization_area: float = 0.0  # percent × seconds
    utilization_span_s: float = 0.0
    utilization_sum: int = 0
    utilization_readings: int = 0
    peak_utilization_pct: int | None = None
    peak_memory_mib: int | None = None

    def add(self, sample: CardSample) -> None:
        if self.last_at_s is not None and sample.at_s <= self.last_at_s:
            return
        util = sample.utilization_pct
        if util is not None:
            if self.last_at_s is not None and self.last_utilization_pct is not None:
                dt = sample.at_s - self.last_at_s
                self.utilization_area += (self.last_utilization_pct + util) / 2 * dt
                self.utilization_span_s += dt
            self.utilization_sum += util
            self.utilization_readings += 1
            self.peak_utilization_pct = max(util, self.peak_utilization_pct or 0)
        energy = sample.energy_mj
        if energy is not None:
            if self.last_energy_mj is not None:
                # Backwards: the counter was reset and counts from 0 again.
                self.energy_mj += energy - self.last_energy_mj if energy >= self.last_energy_mj else energy
            self.last_energy_mj = energy
        self.peak_memory_mib = max(sample.memory_used_mib, self.peak_memory_mib or 0)
        self.last_at_s = sample.at_s
        self.last_utilization_pct = util


class JobMeter:
    """Accumulates the samples of one job's cards; `finish()` says what the job used.

    `cards` is the job's card indices, or only how many it has: then the first that many distinct
    cards sampled are the job's, and a sample of one more is a caller's mistake (ValueError).
    """

    def __init__(self, cards: int | Sequence[int], started_at_s: float) -> None:
        if isinstance(cards, int):
            if cards < 0:
                raise ValueError(f"cards cannot be negative ({cards})")
            self._count, self._cards = cards, {}
        else:
            if len(set(cards)) != len(cards):
                raise ValueError(f"a card is listed twice: {list(cards)}")
            self._count, self._cards = len(cards), {index: _Card() for index in cards}
        self._pinned = not isinstance(cards, int)
        self.started_at_s = started_at_s

    @property
    def cards(self) -> int:
        return self._count

    def add(self, samples: Iterable[CardSample]) -> None:
        for sample in samples:
            if sample.at_s < self.started_at_s:
                continue
            card = self._cards.get(sample.index)
            if card is None:
                if self._pinned:
                    continue  # another job's card, sampled in the same round
                if len(self._cards) == self._count:
                    raise ValueError(f"card {sample.index} is one more than the job's {self._count}")
                card = self._cards[sample.index] = _Card()
            card.add(sample)

    def finish(self, ended_at_s: float, *, cpu_seconds: int | None = None) -> JobUsage:
        """The job's usage from its start to `ended_at_s` (monotonic), from the samples added so far."""
        if cpu_seconds is not None and cpu_seconds < 0:
            raise ValueError(f"cpu_seconds cannot be negative ({cpu_seconds})")
        cards = list(self._cards.values())
        span_s = sum(c.utilization_span_s for c in cards)
        readings = sum(c.utilization_readings for c in cards)
        mean: float | None = None
        if span_s > 0:
            mean = sum(c.utilization_area for c in cards) / span_s
        elif readings:
            mean = sum(c.utilization_sum for c in cards) / readings
        # Every card must have shown a counter (a card never sampled has not): a partial sum would read
        # as the job's energy and be too low.
        known_energy = (
            self._count > 0 and len(cards) == self._count and all(c.last_energy_mj is not None for c in cards)
        )
        return JobUsage(
            cards=self._count,
            started_at_s=self.started_at_s,
            ended_at_s=ended_at_s,
            card_seconds=card_seconds(self._count, ended_at_s - self.started_at_s),
            mean_utilization_pct=mean,
            peak_utilization_pct=_peak(c.peak_utilization_pct for c in cards),
            peak_memory_mib=_peak(c.peak_memory_mib for c in cards),
            energy_j=joules(sum(c.energy_mj for c in cards)) if known_energy else None,
            cpu_seconds=cpu_seconds,
        )


def _peak(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def meter_job(
    cards: int | Sequence[int],
    started_at_s: float,
    ended_at_s: float,
    samples: Iterable[CardSample],
    *,
    cpu_seconds: int | None = None,
) -> JobUsage:
    """A finished job's usage from all its samples at once."""
    meter = JobMeter(cards, started_at_s)
    meter.add(samples)
    return meter.finish(ended_at_s, cpu_seconds=cpu_seconds)


# --- the usage CloudEvent --------------------------------------------------------------------------


def event_id(launch: str) -> str:
    """The event's id: one per launch, so a resend is a duplicate the server ignores by (source, id)."""
    return f"usage-{launch}"


def _checked_id(value: str, what: str) -> str:
    if not value or len(value) > MAX_EXTERNAL_ID or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{what} must be 1–{MAX_EXTERNAL_ID} characters without control characters")
    return value


def usage_event(
    *, node_id: str | int, launch: str, usage: JobUsage, started_at: datetime, ended_at: datetime
) -> dict[str, Any]:
    """The CloudEvents 1.0 usage event of a finished job (what POST /metering/events takes).

    `started_at` and `ended_at` are the node's wall-clock times of the job (aware). card_seconds comes
    from the monotonic clock, so a wall clock stepped during the job could make it more than the
    server allows for these times (cards × seconds, rounded up); it is capped there rather than have
    the whole event refused.
    """
    started = require_aware(started_at, name="started_at")
    ended = require_aware(ended_at, name="ended_at")
    if ended < started:
        raise ValueError(f"ended_at {ended.isoformat()} is before started_at {started.isoformat()}")
    if not launch or len(launch) > MAX_LAUNCH_NAME:
        raise ValueError(f"launch must be 1–{MAX_LAUNCH_NAME} characters")
    most = math.ceil(usage.cards * (ended - started).total_seconds())
    mean = usage.mean_utilization_pct
    return {
        "specversion": SPEC_VERSION,
        "id": _checked_id(event_id(launch), "launch"),
        "source": _checked_id(f"agent/{node_id}", "node id"),
        "type": EVENT_TYPE,
        "time": ended.isoformat(),
        "subject": launch,
        "datacontenttype": "application/json",
        "data": {
            "launch": launch,
            "started_at": started.isoformat(),
            "ended_at": ended.isoformat(),
            "cards": usage.cards,
            "card_seconds": min(usage.card_seconds, most),
            "agent": {
                "mean_utilization_pct": None if mean is None else round(mean, 2),
                "peak_utilization_pct": usage.peak_utilization_pct,
                "peak_memory_mib": usage.peak_memory_mib,
                "energy_j": usage.energy_j,
                "cpu_seconds": usage.cpu_seconds,
            },
        },
    }
