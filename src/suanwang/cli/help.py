"""Chinese help for the CLI: the command tree is written in English; in zh mode every help text is
replaced from help_zh.toml (keyed by the English text), and Typer's own panel words too.
A test walks the whole tree and fails on any help text without a translation.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any

# Words Typer prints itself.
FRAMEWORK_ZH = {
    "OPTIONS_PANEL_TITLE": "选项",
    "ARGUMENTS_PANEL_TITLE": "参数",
    "COMMANDS_PANEL_TITLE": "命令",
    "ERRORS_PANEL_TITLE": "错误",
    "REQUIRED_LONG_STRING": "[必填]",
    "DEFAULT_STRING": "[默认：{}]",
    "ENVVAR_STRING": "[环境变量：{}]",
    "ABORTED_TEXT": "已中止。",
}


@lru_cache
def translations() -> dict[str, str]:
    text = resources.files("suanwang.cli").joinpath("help_zh.toml").read_text(encoding="utf-8")
    return dict(tomllib.loads(text)["help"])


def walk(command: Any) -> Iterator[Any]:
    """The command, its parameters and, for a group, every sub-command, depth first."""
    yield command
    yield from command.params
    for sub in (getattr(command, "commands", None) or {}).values():
        yield from walk(sub)


def help_texts(command: Any) -> set[str]:
    """Every help text in the tree (what help_zh.toml must translate)."""
    return {node.help for node in walk(command) if getattr(node, "help", None)}


HELP_OPTION_ZH = "显示此帮助并退出。"


def _translated_help_option(original: Any) -> Any:
    """The --help option is made lazily by Typer; translate it when it is made."""

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.help = HELP_OPTION_ZH
        return option

    return get_help_option


def translate(command: Any) -> None:
    """Put Chinese help on the tree in place; a text without a translation stays English."""
    import typer.rich_utils as rich_utils

    table = translations()
    for node in walk(command):
        text = getattr(node, "help", None)
        if text and text in table:
            node.help = table[text]
            if hasattr(node, "short_help"):
                node.short_help = None
        if hasattr(node, "get_help_option"):
            node.get_help_option = _translated_help_option(node.get_help_option)
    for name, value in FRAMEWORK_ZH.items():
        setattr(rich_utils, name, value)
