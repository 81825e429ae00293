"""Why a job waits and what happened to it, in the reader's language.

Scheduler reasons carry times as Unix seconds (`start_s`); here they become Asia/Shanghai clock times,
using the `jobwait.*` wording where the scheduler's (`sched.*`) speaks in seconds of a simulation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from suanwang.i18n import catalogue, t
from suanwang.timeutil import SHANGHAI


def _params(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    start = out.get("start_s")
    if isinstance(start, int | float):
        out["start"] = datetime.fromtimestamp(start, tz=UTC).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    for key in ("cost_fen", "alt_cost_fen"):
        if isinstance(out.get(key), int):
            out[key.replace("_fen", "_yuan")] = f"{out[key] / 100:,.2f}"
    return out


def reason_text(code: str | None, params: dict[str, Any], lang: str) -> str | None:
    if not code:
        return None
    messages = catalogue()
    for key in (f"jobwait.{code}", f"sched.{code}", f"job.{code}"):
        if key in messages:
            return t(key, lang, **_params(params))
    return code


def event_text(cause: str, detail: dict[str, Any], lang: str) -> str:
    key = f"cause.{cause}"
    return t(key, lang, **detail) if key in catalogue() else cause
