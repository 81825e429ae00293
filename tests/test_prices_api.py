"""Rate cards over HTTP: integer fen, history kept, price changes, withdrawal and lookup at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests import factories
from tests.helpers import assert_problem

JAN = "2025-01-01T00:00:00Z"
JUL = "2025-07-01T00:00:00Z"
SEP = "2025-09-01T00:00:00Z"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def pool(regulator):
    provider = factories.provider(regulator)
    site = factories.site(regulator, provider["id"])
    return factories.pool(regulator, site["id"])


def add(api, pool_id, price, start, end=None, expect=201):
    body = {"price_fen_per_card_hour": price, "effective_from": start}
    if end is not None:
        body["effective_until"] = end
    return api.post(f"/pools/{pool_id}/prices", body, expect=expect)


def cards(api, pool_id, **params):
    return api.get(f"/pools/{pool_id}/prices", params=params)["items"]


def price(api, pool_id, at):
    return api.get(f"/pools/{pool_id}/price", params={"at": at})


@pytest.mark.parametrize("amount", [12.5, "1200", 12.0, True, 0, -100, None, 10_000_001])
def test_non_integer_or_non_positive_amounts_are_refused(regulator, pool, amount):
    response = regulator.call(
        "POST", f"/pools/{pool['id']}/prices", json={"price_fen_per_card_hour": amount, "effective_from": JAN}
    )
    problem = assert_problem(response, 422, "invalid-request")
    assert [e["field"] for e in problem["errors"]] == ["price_fen_per_card_hour"]
    assert "price_fen_per_card_hour" in problem["detail"]
    assert cards(regulator, pool["id"], include_retired="true") == []


def test_a_fractional_amount_explains_fen(regulator, pool):
    response = regulator.call(
        "POST", f"/pools/{pool['id']}/prices", json={"price_fen_per_card_hour": 12.5, "effective_from": JAN}
    )
    assert "fen" in assert_problem(response, 422, "invalid-request")["detail"]


@pytest.mark.parametrize("start", ["2025-07-01T00:00:00", "2025-07-01", "not a date"])
def test_effective_from_needs_a_time_zone(regulator, pool, start):
    response = regulator.call(
        "POST", f"/pools/{pool['id']}/prices", json={"price_fen_per_card_hour": 100, "effective_from": start}
    )
    assert_problem(response, 422, "invalid-request")
    assert cards(regulator, pool["id"]) == []


def test_empty_interval_is_refused(regulator, pool):
    response = regulator.call(
        "POST",
        f"/pools/{pool['id']}/prices",
        json={"price_fen_per_card_hour": 100, "effective_from": JUL, "effective_until": JUL},
    )
    assert_problem(response, 422, "price.empty-interval")
    assert cards(regulator, pool["id"]) == []


def test_price_change_closes_the_previous_open_card(regulator, pool):
    first = add(regulator, pool["id"], 1200, JAN)
    assert first["effective_until"] is None
    assert first["currency"] == "CNY"
    second = add(regulator, pool["id"], 1500, JUL)
    listed = cards(regulator, pool["id"])
    assert [c["id"] for c in listed] == [first["id"], second["id"]]
    assert when(listed[0]["effective_until"]) == when(JUL)
    assert listed[1]["effective_until"] is None
    assert [c["price_fen_per_card_hour"] for c in listed] == [1200, 1500]


def test_price_lookup_at_boundaries(regulator, pool, clock):
    first = add(regulator, pool["id"], 1200, JAN)
    second = add(regulator, pool["id"], 1500, JUL)
    pid = pool["id"]
    assert price(regulator, pid, JAN)["rate_card_id"] == first["id"]
    assert price(regulator, pid, "2025-06-30T23:59:59.999999Z")["rate_card_id"] == first["id"]
    at_change = price(regulator, pid, JUL)
    assert at_change["rate_card_id"] == second["id"]
    assert at_change["price_fen_per_card_hour"] == 1500
    assert at_change["currency"] == "CNY"
    # The same instant written in Beijing time.
    assert price(regulator, pid, "2025-07-01T08:00:00+08:00")["rate_card_id"] == second["id"]
    assert price(regulator, pid, "2025-07-01T07:59:59+08:00")["rate_card_id"] == first["id"]
    assert price(regulator, pid, "2030-01-01T00:00:00Z")["rate_card_id"] == second["id"]
    # Default: the request's time (the pinned clock is 2025-06-01).
    assert regulator.get(f"/pools/{pid}/price")["rate_card_id"] == first["id"]
    clock.now = when(JUL) + timedelta(seconds=1)
    assert regulator.get(f"/pools/{pid}/price")["rate_card_id"] == second["id"]


def test_no_price_before_the_first_card(regulator, pool):
    add(regulator, pool["id"], 1200, JAN)
    problem = assert_problem(
        regulator.call("GET", f"/pools/{pool['id']}/price", params={"at": "2024-12-31T23:59:59Z"}),
        404,
        "price.none",
    )
    assert str(pool["id"]) in problem["detail"]


def test_price_lookup_needs_an_aware_time(regulator, pool):
    add(regulator, pool["id"], 1200, JAN)
    response = regulator.call("GET", f"/pools/{pool['id']}/price", params={"at": "2025-07-01T00:00:00"})
    assert_problem(response, 422, "time.naive")
    assert_problem(
        regulator.call("GET", f"/pools/{pool['id']}/price", params={"at": "soon"}), 422, "invalid-request"
    )


def test_overlapping_card_is_refused_and_changes_nothing(regulator, pool):
    first = add(regulator, pool["id"], 1200, JAN, JUL)
    before = cards(regulator, pool["id"])
    for start, end in [
        ("2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"),
        ("2024-12-01T00:00:00Z", None),
        (JAN, JUL),
        ("2024-06-01T00:00:00Z", "2025-01-01T00:00:01Z"),
    ]:
        body = {"price_fen_per_card_hour": 999, "effective_from": start}
        if end:
            body["effective_until"] = end
        problem = assert_problem(
            regulator.call("POST", f"/pools/{pool['id']}/prices", json=body), 409, "price.overlap"
        )
        assert str(first["id"]) in problem["detail"]
    assert cards(regulator, pool["id"]) == before


def test_touching_cards_fit(regulator, pool):
    add(regulator, pool["id"], 1200, JAN, JUL)
    add(regulator, pool["id"], 1300, JUL, SEP)
    add(regulator, pool["id"], 1100, "2024-07-01T00:00:00Z", JAN)
    assert [c["price_fen_per_card_hour"] for c in cards(regulator, pool["id"])] == [1100, 1200, 1300]


def test_retroactive_price_change_is_refused_and_changes_nothing(regulator, pool):
    first = add(regulator, pool["id"], 1200, JAN)
    response = regulator.call(
        "POST",
        f"/pools/{pool['id']}/prices",
        json={"price_fen_per_card_hour": 900, "effective_from": "2025-05-01T00:00:00Z"},
    )
    problem = assert_problem(response, 422, "price.retroactive")
    assert "2025-05-01" in problem["detail"]
    listed = cards(regulator, pool["id"])
    assert [c["id"] for c in listed] == [first["id"]]
    assert listed[0]["effective_until"] is None
    assert price(regulator, pool["id"], "2025-05-15T00:00:00Z")["price_fen_per_card_hour"] == 1200


def test_price_change_effective_right_now_is_allowed(regulator, pool, clock):
    add(regulator, pool["id"], 1200, JAN)
    now = clock.now.isoformat()
    second = add(regulator, pool["id"], 1300, now)
    assert regulator.get(f"/pools/{pool['id']}/price")["rate_card_id"] == second["id"]


def test_withdrawing_a_future_card_restores_the_previous_end(regulator, pool):
    first = add(regulator, pool["id"], 1200, JAN)
    second = add(regulator, pool["id"], 1500, JUL)
    withdrawn = regulator.post(f"/pools/{pool['id']}/prices/{second['id']}/retire", expect=200)
    assert withdrawn["retired_at"] is not None
    listed = cards(regulator, pool["id"])
    assert [c["id"] for c in listed] == [first["id"]]
    assert listed[0]["effective_until"] is None
    assert price(regulator, pool["id"], SEP)["rate_card_id"] == first["id"]
    history = cards(regulator, pool["id"], include_retired="true")
    assert [c["id"] for c in history] == [first["id"], second["id"]]
    # The slot is free again: a different change can be scheduled.
    third = add(regulator, pool["id"], 1400, SEP)
    assert when(cards(regulator, pool["id"])[0]["effective_until"]) == when(SEP)
    assert price(regulator, pool["id"], SEP)["rate_card_id"] == third["id"]


def test_withdrawing_a_bounded_future_card_hands_its_slot_to_the_card_before(regulator, pool):
    first = add(regulator, pool["id"], 1200, JAN)
    promo = add(regulator, pool["id"], 800, JUL, SEP)
    after = add(regulator, pool["id"], 1300, SEP)
    regulator.post(f"/pools/{pool['id']}/prices/{promo['id']}/retire", expect=200)
    listed = {c["id"]: c for c in cards(regulator, pool["id"])}
    assert set(listed) == {first["id"], after["id"]}
    assert when(listed[first["id"]]["effective_until"]) == when(SEP)
    assert price(regulator, pool["id"], "2025-08-01T00:00:00Z")["rate_card_id"] == first["id"]


def test_withdrawing_a_card_in_force_is_refused(regulator, pool, clock):
    first = add(regulator, pool["id"], 1200, JAN)
    second = add(regulator, pool["id"], 1500, JUL)
    response = regulator.call("POST", f"/pools/{pool['id']}/prices/{first['id']}/retire")
    assert_problem(response, 409, "price.in-force")
    clock.now = when(JUL)  # the change is now in force too
    assert_problem(
        regulator.call("POST", f"/pools/{pool['id']}/prices/{second['id']}/retire"), 409, "price.in-force"
    )
    listed = cards(regulator, pool["id"])
    assert [c["retired_at"] for c in listed] == [None, None]
    assert when(listed[0]["effective_until"]) == when(JUL)


def test_withdrawing_unknown_or_foreign_cards_is_404(regulator, pool):
    other_pool = factories.pool(regulator, pool["site_id"])
    card = add(regulator, other_pool["id"], 1200, JUL)
    assert_problem(
        regulator.call("POST", f"/pools/{pool['id']}/prices/{card['id']}/retire"), 404, "not-found"
    )
    assert_problem(regulator.call("POST", f"/pools/{pool['id']}/prices/9999/retire"), 404, "not-found")
    regulator.post(f"/pools/{other_pool['id']}/prices/{card['id']}/retire", expect=200)
    # Withdrawn once is gone from the live history: a second withdrawal finds nothing.
    assert_problem(
        regulator.call("POST", f"/pools/{other_pool['id']}/prices/{card['id']}/retire"), 404, "not-found"
    )
    assert cards(regulator, other_pool["id"]) == []


def test_prices_are_readable_by_every_signed_in_user(world):
    add(world.regulator, world.pool1["id"], 1200, JAN)
    for caller in (world.member_b, world.op2, world.admin_a):
        assert caller.get(f"/pools/{world.pool1['id']}/price")["price_fen_per_card_hour"] == 1200
        assert len(cards(caller, world.pool1["id"])) == 1


def test_operator_withdraws_only_its_own_cards(world):
    card = add(world.regulator, world.pool1["id"], 1200, JUL)
    assert_problem(
        world.op2.call("POST", f"/pools/{world.pool1['id']}/prices/{card['id']}/retire"),
        403,
        "access.not-your-provider",
    )
    assert world.regulator.get(f"/pools/{world.pool1['id']}/prices")["total"] == 1
    world.op1.post(f"/pools/{world.pool1['id']}/prices/{card['id']}/retire", expect=200)
    assert world.regulator.get(f"/pools/{world.pool1['id']}/prices")["total"] == 0


def test_times_are_kept_as_instants(regulator, pool):
    card = add(regulator, pool["id"], 1200, "2025-07-01T08:00:00+08:00")
    stored = cards(regulator, pool["id"])[0]
    assert when(stored["effective_from"]) == datetime(2025, 7, 1, tzinfo=UTC)
    assert when(card["effective_from"]) == when(stored["effective_from"])
