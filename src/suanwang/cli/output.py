"""How the CLI shows results: Rich tables for people, `--json` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from suanwang.timeutil import SHANGHAI
from suanwang.units import format_fen

# Piped output is read by tools and people with wide windows: never truncate it to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 250, soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

Column = tuple[str, str, Callable[[Any], str] | None]  # (field, header, formatter)
# What time options accept; a date or time without a zone is read in Asia/Shanghai.
TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def shanghai_time(value: Any) -> str:
    """ISO time from the API shown in Asia/Shanghai, minute precision."""
    if not value:
        return ""
    return datetime.fromisoformat(str(value)).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def fen(value: Any) -> str:
    return format_fen(int(value))


def yes_no(value: Any) -> str:
    return "✓" if value else ""


def number(value: Any) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def joined(value: Any) -> str:
    return ", ".join(value or [])


def _cell(row: dict[str, Any], field: str, formatter: Callable[[Any], str] | None) -> str:
    value = row.get(field)
    if formatter is not None:
        return formatter(value)
    return "" if value is None else str(value)


def show(data: Any, columns: Sequence[Column], *, as_json: bool, title: str | None = None) -> None:
    """Print a list (a page or plain list) or one object."""
    if as_json:
        console.print_json(json.dumps(data, ensure_ascii=False))
        return
    rows = data["items"] if isinstance(data, dict) and "items" in data else data
    if isinstance(rows, dict):
        _show_object(rows, columns)
        return
    table = Table(title=title, header_style="bold")
    for _, header, formatter in columns:
        numeric = formatter in (number, fen)
        table.add_column(header, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(row, field, formatter) for field, _, formatter in columns))
    console.print(table)
    if isinstance(data, dict) and "total" in data and data["total"] > len(rows):
        shown_to = data["offset"] + len(rows)
        console.print(f"[dim]{data['offset'] + 1}-{shown_to} / {data['total']} (--offset {shown_to})[/dim]")


def _show_object(row: dict[str, Any], columns: Sequence[Column]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    shown = set()
    for field, header, formatter in columns:
        table.add_row(header, _cell(row, field, formatter))
        shown.add(field)
    for field, value in row.items():
        if field not in shown:
            table.add_row(
                field,
                ""
                if value is None
                else json.dumps(value, ensure_ascii=False)
                if isinstance(value, dict | list)
                else str(value),
            )
    console.print(table)
