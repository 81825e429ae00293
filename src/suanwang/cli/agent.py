"""`suanwang agent`: the node agent on a provider's node (run), and its calibration benchmark."""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from suanwang.agent.gpu import Probe, RecordedProbe, probe_for_node

agent_app = typer.Typer(
    help="The node agent: run work on this node for a pool of an agent site, meter its cards, calibrate.",
    no_args_is_help=True,
)


def _probe(recording: Path | None) -> Probe:
    return RecordedProbe.from_file(recording) if recording else probe_for_node()


Recording = Annotated[
    Path | None,
    typer.Option(
        help="Replay recorded NVML samples (JSON) instead of reading this node's cards (tests, demos)."
    ),
]


@agent_app.command("run")
def run(
    control_plane: Annotated[str, typer.Option(envvar="SUANWANG_URL", help="The control plane's URL.")],
    token: Annotated[str, typer.Option(envvar="SUANWANG_TOKEN", help="A provider operator's API token.")],
    pool: Annotated[int, typer.Option(help="The pool (of an agent site) this node belongs to.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the agent keeps launch output and its metering outbox.")
    ] = Path("var/agent"),
    hostname: Annotated[str | None, typer.Option(help="The node's name (default: this host's name).")] = None,
    recording: Recording = None,
    calibrate_first: Annotated[
        bool,
        typer.Option("--calibrate", help="Calibrate the cards and report the result before taking work."),
    ] = False,
) -> None:
    """Register this node into its pool and run the work assigned to it until stopped (Ctrl-C)."""
    from suanwang.agent import calibrate as bench
    from suanwang.agent.node import make_agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    probe = _probe(recording)
    agent = make_agent(control_plane, token, pool, directory, probe, hostname=hostname)
    node = agent.register()
    typer.echo(f"node {node['id']} ({node['hostname']}, {node['card_count']} cards) in pool {pool}")
    if calibrate_first:
        runner: bench.Runner = bench.TorchRunner() if probe.cards() else bench.NumpyRunner()
        result = bench.calibrate(probe, runner)
        agent.report_calibration(result)
        typer.echo(f"calibrated: {result.total_tflops:.1f} TFLOPS measured on this node")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        agent.run(stop)
    except KeyboardInterrupt:
        stop.set()
        agent.runner.stop_all(agent.monotonic())


@agent_app.command("calibrate")
def calibrate(
    repeats: Annotated[
        int, typer.Option(min=1, max=100, help="Timed repeats per card (the median is kept).")
    ] = 5,
    size: Annotated[
        int | None, typer.Option(min=64, help="Matrix size n (default: what fills the card).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")
    ] = False,
    recording: Recording = None,
) -> None:
    """Measure dense matrix-multiply TFLOPS of each card (PyTorch on GPUs, numpy on a CPU-only node)."""
    from suanwang.agent import calibrate as bench

    probe = _probe(recording)
    runner: bench.Runner = bench.TorchRunner() if probe.cards() else bench.NumpyRunner()
    result = bench.calibrate(probe, runner, repeats=repeats, n=size)
    if as_json:
        typer.echo(
            json.dumps({"cards": [asdict(c) for c in result.cards], "total_tflops": result.total_tflops})
        )
        return
    typer.echo(f"{'card':>5} {'model':<16} {'dtype':<6} {'n':>6} {'median TFLOPS':>14}")
    for card in result.cards:
        index = "cpu" if card.index is None else str(card.index)
        typer.echo(f"{index:>5} {card.model:<16} {card.dtype:<6} {card.n:>6} {card.median_tflops:>14.2f}")
    typer.echo(f"{'node':>5} {'':<16} {'':<6} {'':>6} {result.total_tflops:>14.2f}")
