"""Trace-driven simulator: replay a trace through `suanwang.scheduler.schedule` (docs/simulator.md)."""

from suanwang.scheduler.simulate.engine import Attempt, JobRecord, SimResult, simulate
from suanwang.scheduler.simulate.metrics import KEYS as METRIC_KEYS
from suanwang.scheduler.simulate.metrics import compute as compute_metrics
from suanwang.scheduler.simulate.scenario import Fault, Scenario, load_scenario, parse_scenario
from suanwang.scheduler.simulate.trace import TraceError, load_trace, parse_mapping, read_trace

__all__ = [
    "METRIC_KEYS",
    "Attempt",
    "Fault",
    "JobRecord",
    "Scenario",
    "SimResult",
    "TraceError",
    "compute_metrics",
    "load_scenario",
    "load_trace",
    "parse_mapping",
    "parse_scenario",
    "read_trace",
    "simulate",
]
