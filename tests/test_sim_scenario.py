"""Scenario TOML loading: the issue's minimal form, the extensions, and clear errors naming the culprit."""

from __future__ import annotations

import pytest

from suanwang.scheduler.policy import Algorithm
from suanwang.scheduler.simulate import Fault, load_scenario, parse_scenario
from suanwang.scheduler.types import Classification, Zone

MINIMAL = """
reference_accelerator = "V100"

[[pools]]
id = "p1"
provider = "prov"
site = "s1"
region = "r1"
zone = "public"
accelerator = "h800"
cards = 16
cards_per_node = 8
price_fen_per_card_hour = 1200
local = true

[[pools]]
id = "gov"
provider = "govdc"
site = "g1"
region = "r1"
zone = "government"
accelerator = "ASCEND-910B"
cards = 8
cards_per_node = 8
price_fen_per_card_hour = 500
local = true

[[tenants]]
id = "sme"
kind = "enterprise"
local = true
sme = true
weight = 1

[[tenants]]
id = "bureau"
kind = "government"
local = true
sme = false
weight = 2.5
"""


def test_minimal_form_loads() -> None:
    scenario = parse_scenario(MINIMAL)
    assert scenario.reference_accelerator == "V100"
    p1, gov = scenario.pools
    assert (p1.id, p1.accelerator, p1.cards_total, p1.cards_free, p1.cards_per_node) == (
        "p1",
        "H800",
        16,
        16,
        8,
    )
    assert (p1.zone, p1.local, p1.healthy, p1.price_fen_per_card_hour) == (Zone.PUBLIC, True, True, 1200)
    assert gov.zone is Zone.GOVERNMENT and gov.accelerator == "ASCEND-910B"
    sme, bureau = scenario.tenants
    assert sme.local_sme and not bureau.local_sme
    assert (bureau.kind, bureau.weight, bureau.usage_card_s) == ("government", 2.5, 0.0)
    assert scenario.faults == () and scenario.default_classification == {}
    policy = scenario.policy("fifo")
    assert policy.algorithm is Algorithm.FIFO and policy.reference_accelerator == "V100"


def test_extensions_and_policy_table() -> None:
    text = (
        MINIMAL.replace("weight = 1\n", "weight = 1\ndefault_preemptible = true\n").replace(
            "weight = 2.5", 'weight = 2.5\ndefault_classification = "government"'
        )
        + """
[policy]
algorithm = "backfill"
fairshare_half_life_s = 3600.0
pool_order = ["gov", "p1"]

[[faults]]
pool = "p1"
start_s = 10
end_s = 20.5
"""
    )
    scenario = parse_scenario(text)
    assert scenario.default_classification == {"bureau": Classification.GOVERNMENT}
    assert scenario.default_preemptible == {"sme": True}
    assert scenario.faults == (Fault("p1", 10.0, 20.5),)
    policy = scenario.policy()
    assert policy.algorithm is Algorithm.BACKFILL and policy.pool_order == ("gov", "p1")
    assert policy.fairshare_half_life_s == 3600.0
    assert scenario.policy("suanwang").algorithm is Algorithm.SUANWANG


@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        ('accelerator = "h800"', 'accelerator = "H900"', ["pool 'p1'", "unknown accelerator 'H900'"]),
        ('zone = "government"', 'zone = "gov"', ["pool 'gov'", "zone"]),
        ("cards = 16", "cards = 0", ["pool 'p1'", "cards must be a positive integer"]),
        ("cards = 8\n", "cards = -8\n", ["pool 'gov'", "cards"]),
        (
            "cards_per_node = 8\nprice_fen_per_card_hour = 1200",
            "cards_per_node = 0\nprice_fen_per_card_hour = 1200",
            ["pool 'p1'", "cards_per_node"],
        ),
        ('id = "gov"', 'id = "p1"', ["duplicate pool id 'p1'"]),
        ('id = "bureau"', 'id = "sme"', ["duplicate tenant id 'sme'"]),
        ('kind = "government"', 'kind = "ministry"', ["tenant 'bureau'", "kind"]),
        ("weight = 2.5", "weight = 0", ["tenant 'bureau'", "weight"]),
        ("local = true\n\n[[pools]]", 'local = "yes"\n\n[[pools]]', ["pool 'p1'", "local"]),
        ("price_fen_per_card_hour = 500", "price_fen_per_card_hour = 5.5", ["pool 'gov'", "price"]),
        (
            "price_fen_per_card_hour = 500",
            "price_fen_per_card_hour = 500\nnodes = 1",
            ["pool 'gov'", "nodes"],
        ),
        ('reference_accelerator = "V100"', 'reference_accelerator = "X1"', ["reference_accelerator", "'X1'"]),
        ('region = "r1"\nzone = "public"', 'zone = "public"', ["pool 'p1'", "missing region"]),
    ],
)
def test_bad_scenarios_name_the_culprit(old: str, new: str, needles: list[str]) -> None:
    assert old in MINIMAL
    with pytest.raises(ValueError) as caught:
        parse_scenario(MINIMAL.replace(old, new, 1), source="s.toml")
    message = str(caught.value)
    assert message.startswith("s.toml: ")
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("[policy]\nspeed = 3\n", "speed"),
        ('[policy]\nreference_accelerator = "A800"\n', "differs"),
        ('[[faults]]\npool = "nope"\nstart_s = 1\nend_s = 2\n', "unknown pool 'nope'"),
        ('[[faults]]\npool = "p1"\nstart_s = 5\nend_s = 5\n', "end_s must be after start_s"),
        ("bogus = 1\n", "bogus"),
    ],
)
def test_bad_policy_and_faults(extra: str, needle: str) -> None:
    text = extra + MINIMAL if extra.startswith("bogus") else MINIMAL + extra
    with pytest.raises(ValueError, match=needle):
        parse_scenario(text)


def test_no_pools_and_bad_toml_are_errors() -> None:
    with pytest.raises(ValueError, match="at least one"):
        parse_scenario('reference_accelerator = "V100"\n')
    with pytest.raises(ValueError, match="not valid TOML"):
        parse_scenario("[[pools]\n")


def test_load_by_path_and_unknown_name(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert [p.id for p in load_scenario(path).pools] == ["p1", "gov"]
    with pytest.raises(ValueError, match="pinghu-dev"):
        load_scenario(tmp_path / "missing.toml")


def test_shipped_development_scenario() -> None:
    scenario = load_scenario("pinghu-dev")
    pools = {p.id: p for p in scenario.pools}
    assert 200 <= sum(p.cards_total for p in scenario.pools) <= 600
    assert {p.zone for p in scenario.pools if p.id.startswith("gov-")} == {Zone.GOVERNMENT}
    assert not pools["geely-a800"].local and not pools["qingyang-h20"].local and pools["runze-h800"].local
    assert max(p.cards_total for p in scenario.pools) >= 64  # the trace's largest job (64 cards) fits
    kinds = {t.kind for t in scenario.tenants}
    assert kinds == {"enterprise", "government", "research", "university"}
    assert len(scenario.tenants) == 15 and sum(t.local_sme for t in scenario.tenants) >= 3
    government = [t.id for t in scenario.tenants if t.kind == "government"]
    assert [scenario.default_classification.get(t) for t in government] == [Classification.GOVERNMENT]
