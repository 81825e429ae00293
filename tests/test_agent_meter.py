"""The pure meter: a job's card samples → its usage (card-seconds as the backends count them, energy
across counter resets, time-weighted utilization) and the usage CloudEvent it is reported as."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suanwang.agent.gpu import CardSample, RecordedProbe
from suanwang.agent.meter import JobMeter, JobUsage, event_id, joules, meter_job, usage_event
from suanwang.backends.protocol import Observation, RemoteState
from suanwang.metering.schemas import UsageData, UsageEvent

RECORDING = Path(__file__).parent / "data" / "nvml_h200_recording.json"
REAL_RECORDING = Path(__file__).parent / "data" / "nvml_h200_vm_recording.json"
T0 = datetime(2025, 6, 1, 6, 0, tzinfo=UTC)


def s(
    index: int,
    at_s: float,
    util: int | None = 50,
    *,
    memory: int = 1000,
    energy: int | None = None,
    power: int | None = None,
) -> CardSample:
    return CardSample(
        index=index,
        at_s=at_s,
        utilization_pct=util,
        memory_used_mib=memory,
        power_mw=power,
        energy_mj=energy,
    )


# --- hand-computed cases ---------------------------------------------------------------------------


def test_a_two_card_job_by_hand():
    samples = [
        s(0, 0.0, 0, memory=500, energy=1_000),
        s(1, 0.0, 100, memory=800, energy=2_000),
        s(0, 10.0, 50, memory=70_000, energy=5_000),
        s(1, 10.0, 100, memory=71_000, energy=2_600),
        s(0, 20.0, 100, memory=69_000, energy=9_500),
        s(1, 20.0, 100, memory=68_000, energy=3_100),
    ]
    usage = meter_job([0, 1], 0.0, 20.25, samples, cpu_seconds=31)

    assert usage == JobUsage(
        cards=2,
        started_at_s=0.0,
        ended_at_s=20.25,
        card_seconds=40,  # 2 × 20.25 = 40.5: Python's round, as the backends' Observation rounds
        # card 0: ((0+50)/2·10 + (50+100)/2·10) = 1000 %·s; card 1: 2000 %·s; over 40 card-seconds
        mean_utilization_pct=75.0,
        peak_utilization_pct=100,
        peak_memory_mib=71_000,
        energy_j=10,  # (8500 + 1100) mJ = 9.6 J
        cpu_seconds=31,
    )


def test_card_seconds_round_exactly_as_observations_do():
    for cards, seconds in [(2, 20.25), (1, 0.5), (1, 1.5), (3, 10.6), (8, 3600.0), (4, 0.0)]:
        observation = Observation(
            handle="h",
            state=RemoteState.SUCCEEDED,
            started_at=T0,
            ended_at=T0 + timedelta(seconds=seconds),
            cards=cards,
        )
        assert meter_job(cards, 0.0, seconds, []).card_seconds == observation.card_seconds


def test_a_counter_reset_counts_from_zero_and_never_goes_negative():
    samples = [s(0, 0.0, energy=10_000), s(0, 1.0, energy=15_000), s(0, 2.0, energy=2_000)]
    samples += [s(0, 3.0, energy=4_500)]
    # 5000 before the reload, 2000 up to the first reading after it, 2500 after: 9.5 J, half up
    assert meter_job([0], 0.0, 3.0, samples).energy_j == 10


@pytest.mark.parametrize(
    ("millijoules", "whole"), [(0, 0), (499, 0), (500, 1), (1500, 2), (2500, 3), (8499, 8)]
)
def test_joules_round_half_up(millijoules, whole):
    assert joules(millijoules) == whole


def test_energy_is_unknown_when_a_card_has_no_counter_never_a_partial_sum():
    with_counter = [s(0, 0.0, energy=0), s(0, 1.0, energy=900_000)]
    without = [s(1, 0.0), s(1, 1.0)]
    assert meter_job([0, 1], 0.0, 1.0, with_counter + without).energy_j is None
    # A card of the job that was never sampled has shown no counter either.
    assert meter_job([0, 1], 0.0, 1.0, with_counter).energy_j is None
    assert meter_job(2, 0.0, 1.0, with_counter).energy_j is None
    assert meter_job([0], 0.0, 1.0, with_counter).energy_j == 900


def test_a_missing_reading_between_two_counters_loses_nothing():
    samples = [s(0, 0.0, energy=1_000), s(0, 1.0, energy=None), s(0, 2.0, energy=4_000)]
    assert meter_job([0], 0.0, 2.0, samples).energy_j == 3


def test_samples_before_the_start_of_other_cards_and_repeats_are_ignored():
    samples = [
        s(0, 5.0, 100, memory=99_999, energy=0),  # the previous job's last reading
        s(0, 10.0, 20, energy=1_000_000),
        s(3, 12.0, 100, memory=99_999, energy=0),  # another job's card, read in the same round
        s(0, 20.0, 40, energy=1_004_000),
        s(0, 20.0, 100, memory=99_999, energy=9_000_000),  # a repeat of the instant just read
    ]
    usage = meter_job([0], 10.0, 20.0, samples)
    assert (usage.mean_utilization_pct, usage.peak_utilization_pct) == (30.0, 40)
    assert (usage.peak_memory_mib, usage.energy_j) == (1000, 4)


def test_a_meter_given_only_the_card_count_learns_the_cards_from_the_samples():
    meter = JobMeter(cards=2, started_at_s=0.0)
    meter.add([s(4, 0.0, energy=0), s(6, 0.0, energy=0)])
    meter.add([s(4, 1.0, energy=2_000), s(6, 1.0, energy=3_000)])
    assert meter.finish(1.0).energy_j == 5
    with pytest.raises(ValueError, match="one more"):
        meter.add([s(7, 2.0)])


def test_mig_cards_without_utilization_still_meter_memory_and_energy():
    samples = [s(0, 0.0, None, memory=10, energy=0), s(0, 5.0, None, memory=20, energy=5_000)]
    usage = meter_job([0], 0.0, 5.0, samples)
    assert (usage.mean_utilization_pct, usage.peak_utilization_pct) == (None, None)
    assert (usage.peak_memory_mib, usage.energy_j) == (20, 5)


def test_one_reading_per_card_gives_the_plain_mean():
    usage = meter_job([0, 1], 0.0, 1.0, [s(0, 0.5, 30), s(1, 0.5, 60)])
    assert usage.mean_utilization_pct == 45.0


def test_a_cpu_only_job_has_no_card_figures():
    usage = meter_job(0, 100.0, 160.0, [], cpu_seconds=58)
    assert usage == JobUsage(0, 100.0, 160.0, 0, None, None, None, None, 58)


def test_a_job_ending_before_it_started_has_zero_card_seconds():
    assert meter_job([0], 10.0, 9.0, []).card_seconds == 0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="twice"):
        JobMeter([0, 0], 0.0)
    with pytest.raises(ValueError, match="negative"):
        JobMeter(-1, 0.0)
    with pytest.raises(ValueError, match="negative"):
        JobMeter(1, 0.0).finish(1.0, cpu_seconds=-1)


def test_the_recorded_h200_job():
    probe = RecordedProbe.from_file(RECORDING)
    recorded = [probe.sample([0, 1]) for _ in range(61)]
    started, ended = recorded[5][0].at_s, recorded[55][1].at_s  # from loading to teardown
    meter = JobMeter([0, 1], started)
    for round_ in recorded:
        meter.add(round_)
    usage = meter.finish(ended)

    assert usage.card_seconds == 100  # 2 cards × about 50 s
    assert usage.peak_memory_mib is not None and 121_336 <= usage.peak_memory_mib < 143_771
    assert usage.peak_utilization_pct == 100
    assert usage.mean_utilization_pct is not None and 80 < usage.mean_utilization_pct < 100
    # The counters, read at the end, exceed the meter's end: they grow by the mean power × time.
    power = [[x.power_mw or 0 for x in (r[c] for r in recorded[5:])] for c in (0, 1)]
    times = [[r[c].at_s for r in recorded[5:]] for c in (0, 1)]
    integral_mj = sum(
        (p[i] + p[i + 1]) / 2 * (t[i + 1] - t[i])
        for p, t in zip(power, times, strict=True)
        for i in range(len(p) - 1)
    )
    assert usage.energy_j == pytest.approx(integral_mj / 1000, rel=0.01)
    assert 50_000 < (usage.energy_j or 0) < 75_000  # two cards at 500–700 W for about 50 s


def test_a_job_metered_from_a_real_h200_recording():
    probe = RecordedProbe.from_file(REAL_RECORDING)
    rounds = [probe.sample([0]) for _ in range(47)]
    busy = [i for i, r in enumerate(rounds) if r[0].utilization_pct]
    window = rounds[busy[0] - 1 : busy[-1] + 2]  # the job: from the sample before the load to the one after
    meter = JobMeter([0], window[0][0].at_s)
    for round_ in window:
        meter.add(round_)
    usage = meter.finish(window[-1][0].at_s)

    assert usage.card_seconds == 11  # 10.6 s on one card
    assert usage.peak_utilization_pct == 98 and usage.peak_memory_mib == 1589
    # Time-weighted over the window, the ramps at both ends included: below the plateau of 94–98%.
    points = [(r[0].at_s, r[0].utilization_pct or 0) for r in window]
    weighted = sum((ua + ub) / 2 * (tb - ta) for (ta, ua), (tb, ub) in itertools.pairwise(points))
    expected = weighted / (points[-1][0] - points[0][0])
    assert usage.mean_utilization_pct == pytest.approx(expected) and 85 < expected < 94
    first, last = window[0][0], window[-1][0]
    assert usage.energy_j == joules((last.energy_mj or 0) - (first.energy_mj or 0)) == 6908
    # About 650 W for 10 s: the card's own counter, not a power × time estimate.
    assert 6_000 < usage.energy_j < 7_500


# --- properties ------------------------------------------------------------------------------------

cards_st = st.integers(min_value=0, max_value=64)
counter_st = st.integers(min_value=0, max_value=2**50)


@given(cards=cards_st, micros=st.integers(min_value=-(10**9), max_value=10**13))
def test_card_seconds_are_never_negative_and_follow_the_backends_rule(cards, micros):
    seconds = micros / 1e6
    observation = Observation(
        handle="h",
        state=RemoteState.SUCCEEDED,
        started_at=T0,
        ended_at=T0 + timedelta(microseconds=micros),
        cards=cards,
    )
    usage = JobMeter(cards, 0.0).finish(seconds)
    assert usage.card_seconds >= 0
    assert usage.card_seconds == observation.card_seconds


def _energy_by_hand(counters: list[int]) -> int:
    """The counter's growth, a reading lower than the one before starting again from zero."""
    return sum(b - a if b >= a else b for a, b in itertools.pairwise(counters))


@given(st.lists(st.lists(counter_st, min_size=1, max_size=30), min_size=1, max_size=8))
def test_energy_is_never_negative_and_sums_the_growth_across_resets(counters):
    samples = [s(card, float(i), energy=e) for card, seq in enumerate(counters) for i, e in enumerate(seq)]
    usage = meter_job(list(range(len(counters))), 0.0, 30.0, samples)
    expected_mj = sum(_energy_by_hand(seq) for seq in counters)
    assert usage.energy_j is not None and usage.energy_j >= 0
    assert usage.energy_j == (expected_mj + 500) // 1000


@given(st.lists(st.lists(counter_st, min_size=2, max_size=30), min_size=1, max_size=8))
def test_without_resets_energy_is_last_minus_first(counters):
    counters = [sorted(seq) for seq in counters]
    samples = [s(card, float(i), energy=e) for card, seq in enumerate(counters) for i, e in enumerate(seq)]
    usage = meter_job(list(range(len(counters))), 0.0, 30.0, samples)
    assert usage.energy_j == joules(sum(seq[-1] - seq[0] for seq in counters))


readings_st = st.lists(
    st.tuples(
        st.floats(min_value=0.001, max_value=600, allow_nan=False),  # seconds since the card's last reading
        st.integers(min_value=0, max_value=100),
        st.integers(min_value=0, max_value=200_000),
    ),
    min_size=1,
    max_size=40,
)


def _samples(per_card: list[list[tuple[float, int, int]]]) -> list[CardSample]:
    samples = []
    for card, readings in enumerate(per_card):
        at = 0.0
        for gap, util, memory in readings:
            at += gap
            samples.append(s(card, at, util, memory=memory, energy=int(at * 1000)))
    return samples


@given(st.lists(readings_st, min_size=1, max_size=8))
def test_mean_utilization_lies_within_the_readings_and_peaks_are_the_maxima(per_card):
    samples = _samples(per_card)
    usage = meter_job(list(range(len(per_card))), 0.0, 10**6, samples)
    utils = [x.utilization_pct for x in samples if x.utilization_pct is not None]
    assert usage.mean_utilization_pct is not None
    assert min(utils) - 1e-9 <= usage.mean_utilization_pct <= max(utils) + 1e-9
    assert usage.peak_utilization_pct == max(utils)
    assert usage.peak_memory_mib == max(x.memory_used_mib for x in samples)


@given(st.lists(readings_st, min_size=1, max_size=4), st.integers(min_value=0, max_value=100))
def test_a_constant_utilization_is_its_own_mean(per_card, level):
    flat = [[(gap, level, memory) for gap, _, memory in readings] for readings in per_card]
    usage = meter_job(list(range(len(flat))), 0.0, 10**6, _samples(flat))
    assert usage.mean_utilization_pct == pytest.approx(level)


@given(st.lists(readings_st, min_size=1, max_size=4), st.data())
def test_a_repeated_reading_at_the_same_instant_changes_nothing(per_card, data):
    samples = _samples(per_card)
    cards = list(range(len(per_card)))
    repeated_at = data.draw(st.integers(min_value=0, max_value=len(samples) - 1))
    original = samples[repeated_at]
    repeat = CardSample(
        original.index,
        original.at_s,
        data.draw(st.integers(min_value=0, max_value=100)),
        data.draw(st.integers(min_value=0, max_value=200_000)),
        None,
        data.draw(counter_st),
    )
    with_repeat = [*samples[: repeated_at + 1], repeat, *samples[repeated_at + 1 :]]
    assert meter_job(cards, 0.0, 10**6, with_repeat) == meter_job(cards, 0.0, 10**6, samples)


@given(st.lists(readings_st, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_how_rounds_interleave_cards_and_split_batches_changes_nothing(per_card, rnd: random.Random):
    samples = _samples(per_card)
    cards = list(range(len(per_card)))
    # Another interleaving of the cards that keeps each card's own order, fed in random batches.
    queues = [[x for x in samples if x.index == card] for card in cards]
    shuffled: list[CardSample] = []
    while any(queues):
        shuffled.append(rnd.choice([q for q in queues if q]).pop(0))
    meter = JobMeter(cards, 0.0)
    while shuffled:
        cut = rnd.randint(1, len(shuffled))
        meter.add(shuffled[:cut])
        shuffled = shuffled[cut:]
    assert meter.finish(10**6) == meter_job(cards, 0.0, 10**6, samples)


# --- the usage CloudEvent --------------------------------------------------------------------------

USAGE = JobUsage(
    cards=8,
    started_at_s=500.0,
    ended_at_s=4100.0,
    card_seconds=28_800,
    mean_utilization_pct=87.34567,
    peak_utilization_pct=100,
    peak_memory_mib=121_336,
    energy_j=17_280_000,
    cpu_seconds=40_211,
)


def test_the_usage_event_shape():
    shanghai = timezone(timedelta(hours=8))
    event = usage_event(
        node_id=7,
        launch="sw1-42-1",
        usage=USAGE,
        started_at=datetime(2025, 6, 1, 14, 0, tzinfo=shanghai),
        ended_at=datetime(2025, 6, 1, 15, 0, tzinfo=shanghai),
    )
    assert event == {
        "specversion": "1.0",
        "id": "usage-sw1-42-1",
        "source": "agent/7",
        "type": "cn.suanwang.usage.v1",
        "time": "2025-06-01T07:00:00+00:00",
        "subject": "sw1-42-1",
        "datacontenttype": "application/json",
        "data": {
            "launch": "sw1-42-1",
            "started_at": "2025-06-01T06:00:00+00:00",
            "ended_at": "2025-06-01T07:00:00+00:00",
            "cards": 8,
            "card_seconds": 28_800,
            "agent": {
                "mean_utilization_pct": 87.35,
                "peak_utilization_pct": 100,
                "peak_memory_mib": 121_336,
                "energy_j": 17_280_000,
                "cpu_seconds": 40_211,
            },
        },
    }


def test_the_event_is_what_the_metering_endpoint_reads():
    event = usage_event(
        node_id="n1", launch="sw-9-2", usage=USAGE, started_at=T0, ended_at=T0 + timedelta(hours=1)
    )
    if "agent" not in UsageData.model_fields:  # the lead's change adds it; until then check the rest
        event["data"] = {k: v for k, v in event["data"].items() if k != "agent"}
    parsed = UsageEvent.model_validate(event)
    assert (parsed.source, parsed.id, parsed.data.launch) == ("agent/n1", "usage-sw-9-2", "sw-9-2")
    assert (parsed.data.started_at, parsed.data.card_seconds) == (T0, 28_800)


def test_the_event_id_is_stable_per_launch_so_a_resend_is_a_duplicate():
    one = usage_event(
        node_id=1, launch="sw-1-1", usage=USAGE, started_at=T0, ended_at=T0 + timedelta(hours=1)
    )
    again = usage_event(
        node_id=1, launch="sw-1-1", usage=USAGE, started_at=T0, ended_at=T0 + timedelta(hours=1)
    )
    other = usage_event(
        node_id=1, launch="sw-1-2", usage=USAGE, started_at=T0, ended_at=T0 + timedelta(hours=1)
    )
    assert one["id"] == again["id"] == event_id("sw-1-1")
    assert other["id"] != one["id"]


def test_card_seconds_above_what_the_wall_clock_allows_are_capped():
    # The wall clock was stepped back 10 s during the hour: the server would refuse 28,800.
    event = usage_event(
        node_id=1, launch="sw-1-1", usage=USAGE, started_at=T0, ended_at=T0 + timedelta(seconds=3590)
    )
    assert event["data"]["card_seconds"] == 8 * 3590


def test_unknown_figures_are_null_in_the_event():
    usage = meter_job(0, 0.0, 10.0, [])
    event = usage_event(
        node_id=1, launch="sw-1-1", usage=usage, started_at=T0, ended_at=T0 + timedelta(seconds=10)
    )
    assert event["data"]["agent"] == dict.fromkeys(
        ["mean_utilization_pct", "peak_utilization_pct", "peak_memory_mib", "energy_j", "cpu_seconds"]
    )
    assert (event["data"]["cards"], event["data"]["card_seconds"]) == (0, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"started_at": datetime(2025, 6, 1, 6, 0)}, "timezone-aware"),
        ({"ended_at": T0 - timedelta(seconds=1)}, "before"),
        ({"launch": ""}, "launch"),
        ({"launch": "x" * 65}, "launch"),
        ({"node_id": "a\nb"}, "node id"),
        ({"node_id": "n" * 200}, "node id"),
    ],
)
def test_bad_event_arguments_are_refused(kwargs, match):
    arguments = {"node_id": 1, "launch": "sw-1-1", "usage": USAGE, "started_at": T0, "ended_at": T0}
    with pytest.raises(ValueError, match=match):
        usage_event(**(arguments | kwargs))


def test_uneven_sample_spacing_is_weighted_by_time():
    usage = meter_job([0], 0.0, 3.0, [s(0, 0.0, 0), s(0, 0.001, 100), s(0, 3.0, 100)])
    assert usage.mean_utilization_pct == pytest.approx((0.001 * 50 + 2.999 * 100) / 3.0)
