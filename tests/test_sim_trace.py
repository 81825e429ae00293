"""Trace CSV loading: all columns, column mapping, the gavel preset, and all-or-nothing bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from suanwang.scheduler.simulate import TraceError, load_scenario, load_trace, parse_mapping, parse_scenario
from suanwang.scheduler.types import Classification, QueuedJob
from tests.sim_world import GAVEL_CSV

SCENARIO = """
reference_accelerator = "V100"
[[pools]]
id = "p1"
provider = "prov"
site = "s1"
region = "r1"
zone = "public"
accelerator = "V100"
cards = 8
cards_per_node = 8
price_fen_per_card_hour = 100
local = true
[[tenants]]
id = "acme"
kind = "enterprise"
local = false
sme = false
weight = 1
[[tenants]]
id = "bureau"
kind = "government"
local = true
sme = false
weight = 1
default_classification = "government"
"""

HEADER = (
    "job_id,submit_time_s,duration_s,cards,cards_per_node,accelerators,tenant,priority,deadline_s,"
    "max_price_fen,classification,regions,preemptible,job_type"
)


def write(tmp_path: Path, *lines: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_all_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER,
        "j2,5.5,3600,8,4,h800|A800,acme,2,90000,1300,internal,zj-pinghu|gs-qingyang,true,ResNet-50",
        "j1,0,60,0,,,,,,,,,,",
    )
    j1, j2 = load_trace(path)  # sorted by submit time
    assert j1 == QueuedJob(id="j1", tenant="default", cards=0, duration_s=60.0, submit_s=0.0)
    assert j2 == QueuedJob(
        id="j2",
        tenant="acme",
        cards=8,
        duration_s=3600.0,
        submit_s=5.5,
        cards_per_node=4,
        accelerators=frozenset({"H800", "A800"}),
        deadline_s=90000.0,
        max_price_fen_per_card_hour=1300,
        classification=Classification.INTERNAL,
        regions=frozenset({"zj-pinghu", "gs-qingyang"}),
        priority=2,
        preemptible=True,
        job_type="ResNet-50",
    )


def test_minimal_columns_extra_columns_ignored_and_limit(tmp_path: Path) -> None:
    path = write(
        tmp_path, "job_id,submit_time_s,duration_s,cards,note", "b,10,5,1,x", "a,10,5,2,y", "c,1,5,4,z"
    )
    assert [j.id for j in load_trace(path)] == ["c", "a", "b"]
    assert [j.id for j in load_trace(path, limit=2)] == ["c", "a"]


def test_column_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "id,t,len,gpus,who", "x1,0,100,2,acme")
    mapping = parse_mapping(["job_id=id", "submit_time_s=t", "duration_s=len", "cards=gpus", "tenant=who"])
    (job,) = load_trace(path, mapping=mapping)
    assert (job.id, job.submit_s, job.duration_s, job.cards, job.tenant) == ("x1", 0.0, 100.0, 2, "acme")
    with pytest.raises(TraceError, match="no column 'nope'"):
        load_trace(path, mapping={"job_id": "nope"})
    with pytest.raises(TraceError, match="unknown column"):
        load_trace(path, mapping={"jobid": "id"})
    with pytest.raises(TraceError, match="missing required column"):
        load_trace(path)
    with pytest.raises(ValueError, match="DST=SRC"):
        parse_mapping(["job_id"])


def test_scenario_tenants_and_default_classification(tmp_path: Path) -> None:
    scenario = parse_scenario(SCENARIO)
    path = write(
        tmp_path,
        "job_id,submit_time_s,duration_s,cards,tenant,classification",
        "g1,0,10,1,bureau,",
        "g2,0,10,1,bureau,public",
        "a1,0,10,1,acme,",
    )
    jobs = {j.id: j.classification for j in load_trace(path, scenario=scenario)}
    assert jobs == {"g1": Classification.GOVERNMENT, "g2": Classification.PUBLIC, "a1": Classification.PUBLIC}
    lender = parse_scenario(SCENARIO.replace("weight = 1\n", "weight = 1\ndefault_preemptible = true\n", 1))
    flags = write(
        tmp_path,
        "job_id,submit_time_s,duration_s,cards,tenant,preemptible",
        "p1,0,10,1,acme,",
        "p2,0,10,1,acme,false",
        "p3,0,10,1,bureau,",
        name="flags.csv",
    )
    assert {j.id: j.preemptible for j in load_trace(flags, scenario=lender)} == {
        "p1": True,
        "p2": False,
        "p3": False,
    }
    stranger = write(
        tmp_path, "job_id,submit_time_s,duration_s,cards,tenant", "s1,0,10,1,ghost", name="s.csv"
    )
    with pytest.raises(TraceError) as caught:
        load_trace(stranger, scenario=scenario)
    assert (caught.value.line, caught.value.row, caught.value.column) == (2, 1, "tenant")


GOOD = "ok{n},{n},100,1,,,,,,,,,,"


@pytest.mark.parametrize(
    ("bad_row", "column"),
    [
        ("bad,0,100,-1,,,,,,,,,,", "cards"),
        ("bad,0,100,1.5,,,,,,,,,,", "cards"),
        ("bad,0,100,two,,,,,,,,,,", "cards"),
        ("bad,0,abc,1,,,,,,,,,,", "duration_s"),
        ("bad,0,0,1,,,,,,,,,,", "duration_s"),
        ("bad,-5,100,1,,,,,,,,,,", "submit_time_s"),
        ("bad,,100,1,,,,,,,,,,", "submit_time_s"),
        ("bad,0,100,1,,H100|X9,,,,,,,,", "accelerators"),
        ("bad,0,100,1,,,,,,,secret,,,", "classification"),
        ("bad,0,100,1,,,,,,,,,maybe,", "preemptible"),
        ("bad,0,100,1,0,,,,,,,,,", "cards_per_node"),
        ("bad,0,100,1,,,,high,,,,,,", "priority"),
        ("bad,0,100,1,,,,,,-1,,,,", "max_price_fen"),
        ("bad,0,100,1,,,,,soon,,,,,", "deadline_s"),
        ("ok1,0,100,1,,,,,,,,,,", "job_id"),  # duplicate of the first good row
        (",0,100,1,,,,,,,,,,", "job_id"),
    ],
)
def test_bad_row_is_reported_by_line_row_and_column_and_nothing_loads(
    tmp_path: Path, bad_row: str, column: str
) -> None:
    path = write(tmp_path, HEADER, GOOD.format(n=1), GOOD.format(n=2), bad_row, GOOD.format(n=3))
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    error = caught.value
    assert (error.line, error.row, error.column) == (4, 3, column)
    assert f"line 4 (data row 3), column {column!r}" in str(error)


def test_row_with_wrong_field_count_and_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "job_id,submit_time_s,duration_s,cards", "a,0,1,1", "b,0,1")
    with pytest.raises(TraceError, match=r"line 3 \(data row 2\): 3 fields"):
        load_trace(path)
    with pytest.raises(TraceError, match="empty"):
        load_trace(write(tmp_path, "", name="empty.csv"))
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "missing.csv")


def test_gavel_preset_on_a_small_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "vc,seed,job_index,job_type,command,num_steps_arg,needs_data_dir,total_steps,arrival_time,"
        "scale_factor,duration_s_derived_v100",
        'abc,0,0,ResNet-50 (batch size 64),"cd %s && python3 main.py",-n,1,10,0.000000,4,16482',
        "abc,0,1,A3C,cmd,-n,0,10,6.000000,1,1200",
    )
    first, second = load_trace(path, fmt="gavel")
    assert (first.id, first.tenant, first.cards, first.submit_s, first.duration_s, first.job_type) == (
        "abc-0",
        "abc",
        4,
        0.0,
        16482.0,
        "ResNet-50",
    )
    assert (second.id, second.job_type, second.submit_s) == ("abc-1", "A3C", 6.0)
    with pytest.raises(TraceError, match="not a Gavel trace"):
        load_trace(write(tmp_path, HEADER, name="plain.csv"), fmt="gavel")
    with pytest.raises(TraceError, match="csv format only"):
        load_trace(path, fmt="gavel", mapping={"job_id": "vc"})


def test_gavel_preset_on_the_development_trace() -> None:
    path = GAVEL_CSV
    assert path.is_file(), f"the development trace is missing: {path}"
    jobs = load_trace(path, fmt="gavel", scenario=load_scenario("pinghu-dev"))
    assert len(jobs) == 15_264
    first = next(j for j in jobs if j.id == "0e4a51-0")
    assert (first.tenant, first.cards, first.duration_s, first.job_type) == (
        "0e4a51",
        1,
        16482.0,
        "Transformer",
    )
    assert {j.classification for j in jobs if j.tenant == "103959"} == {Classification.GOVERNMENT}
    assert len({j.tenant for j in jobs}) == 15
    assert [j.submit_s for j in jobs] == sorted(j.submit_s for j in jobs)
