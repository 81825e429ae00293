"""Messages in English and Simplified Chinese: API errors, CLI output and pages speak the user's language.

The catalogue is data (messages.toml): one table per message key with an `en` and a `zh` text, each a
Python format string. A test checks that every key has both languages and the same placeholders.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources

LANGS = ("en", "zh")


def normalize_lang(value: str | None) -> str:
    """'zh', 'zh-CN', 'zh_CN.UTF-8', 'zh-Hans' -> 'zh'; anything else -> 'en'."""
    if value and value.strip().lower().replace("_", "-").startswith("zh"):
        return "zh"
    return "en"


def negotiate(accept_language: str | None, default: str = "en") -> str:
    """Pick en or zh from an Accept-Language header, honouring q-values; default when neither is asked."""
    if not accept_language:
        return default
    best_lang, best_q = default, -1.0
    for part in accept_language.split(","):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        tag = tag.strip().lower()
        if tag.startswith("zh"):
            lang = "zh"
        elif tag.startswith("en"):
            lang = "en"
        else:
            continue
        if q > best_q:
            best_lang, best_q = lang, q
    return best_lang


@lru_cache
def catalogue() -> dict[str, dict[str, str]]:
    """messages.toml and every other *.toml here (a slice may keep its messages in its own file); a key
    defined twice is a bug."""
    merged: dict[str, dict[str, str]] = {}
    files = sorted(f for f in resources.files("suanwang.i18n").iterdir() if f.name.endswith(".toml"))
    for file in files:
        entries = tomllib.loads(file.read_text(encoding="utf-8"))
        if twice := entries.keys() & merged.keys():
            raise ValueError(f"message keys defined twice ({file.name}): {sorted(twice)}")
        merged |= entries
    return merged


class _Params(dict[str, object]):
    """A missing parameter shows as its placeholder instead of failing the whole error response."""

    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


def t(key: str, lang: str = "en", /, **params: object) -> str:
    """The message `key` in `lang`, formatted with params; an unknown key is a bug and raises KeyError."""
    entry = catalogue()[key]
    text = entry.get(normalize_lang(lang)) or entry["en"]
    return text.format_map(_Params(params))
