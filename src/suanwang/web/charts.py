"""Chart specs: plain dicts the page script turns into ECharts options (static/dashboard.js).

A spec names its kind, categories and series, and how a click drills down to the list behind it:
`drill = {"url": path, "by": "category" | "series" | "cell", "param": name, "keys": [...]}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Spec = dict[str, Any]


def series(name: str, data: Sequence[Any]) -> dict[str, Any]:
    return {"name": name, "data": list(data)}


def bar(
    categories: Sequence[str],
    lines: Sequence[dict[str, Any]],
    *,
    stack: bool = False,
    unit: str = "",
    percent: bool = False,
    drill: dict[str, Any] | None = None,
) -> Spec:
    return _axis("bar", categories, lines, stack=stack, unit=unit, percent=percent, drill=drill)


def line(
    categories: Sequence[str],
    lines: Sequence[dict[str, Any]],
    *,
    area: bool = False,
    stack: bool = False,
    unit: str = "",
    percent: bool = False,
    drill: dict[str, Any] | None = None,
) -> Spec:
    return _axis(
        "area" if area else "line", categories, lines, stack=stack, unit=unit, percent=percent, drill=drill
    )


def _axis(
    kind: str,
    categories: Sequence[str],
    lines: Sequence[dict[str, Any]],
    *,
    stack: bool,
    unit: str,
    percent: bool,
    drill: dict[str, Any] | None,
) -> Spec:
    spec: Spec = {"kind": kind, "categories": list(categories), "series": list(lines), "stack": stack}
    if unit:
        spec["unit"] = unit
    if percent:
        spec["percent"] = True
    if drill:
        spec["drill"] = drill
    return spec


def pie(name: str, slices: Sequence[tuple[str, Any]], *, drill: dict[str, Any] | None = None) -> Spec:
    spec: Spec = {"kind": "pie", "series": [series(name, [{"name": n, "value": v} for n, v in slices])]}
    if drill:
        spec["drill"] = drill
    return spec


def heatmap(
    name: str,
    x: Sequence[str],
    y: Sequence[str],
    cells: Sequence[tuple[int, int, int]],
    drill: dict[str, Any],
) -> Spec:
    return {
        "kind": "heatmap",
        "x": list(x),
        "y": list(y),
        "series": [series(name, [list(c) for c in cells])],
        "drill": drill,
    }


def drill(url: str, param: str, keys: Sequence[Any], by: str = "category") -> dict[str, Any]:
    return {"url": url, "by": by, "param": param, "keys": list(keys)}
