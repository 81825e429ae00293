"""Messages in English and Chinese: the catalogue is complete, every key the code uses exists, and the API
answers in the caller's language."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from suanwang import errors
from suanwang.api.problems import VALIDATION_KEYS
from suanwang.i18n import catalogue, negotiate, normalize_lang, t
from suanwang.supply.models import Phase
from tests import factories
from tests.helpers import assert_problem, has_cjk

SRC = Path(__file__).resolve().parent.parent / "src" / "suanwang"
ERROR_CLASSES = {
    "Invalid",
    "Conflict",
    "NotFound",
    "Forbidden",
    "Unauthorized",
    "PayloadTooLarge",
    "DomainError",
}
PURE_ERRORS = {"PricingError", "CreditCodeError", "CriteriaError", "TableError"}
WHAT_HELPERS = {"_require_live", "_unique_code"}


def placeholders(text: str) -> set[str]:
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(text) if field}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _const_str(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class Use:
    """One use of a message key in the source, with the parameters given when they are known."""

    def __init__(self, key: str, where: str, params: set[str] | None) -> None:
        self.key, self.where, self.params = key, where, params

    def __repr__(self) -> str:
        return f"{self.key} at {self.where}"


def source_uses() -> list[Use]:
    """Every constant message key passed to an error class, a pure error or t(), across (multi-line) calls."""
    uses: list[Use] = []
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = _name(node.func)
            key = _const_str(node.args[0])
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            # Names of things rendered inside messages ("No {what} with id ..."): what="pool" anywhere,
            # and the last argument of the helpers that pass it on.
            for kw in node.keywords:
                what = _const_str(kw.value) if kw.arg == "what" else None
                if what is not None:
                    uses.append(Use(f"what.{what}", where, set()))
            if name in WHAT_HELPERS and _const_str(node.args[-1]) is not None:
                uses.append(Use(f"what.{_const_str(node.args[-1])}", where, set()))
            if name not in ERROR_CLASSES | PURE_ERRORS | {"t"} or key is None:
                continue
            has_star = any(kw.arg is None for kw in node.keywords)
            params: set[str] | None = None if has_star else {kw.arg for kw in node.keywords if kw.arg}
            if name in PURE_ERRORS:
                second = node.args[1] if len(node.args) > 1 else None
                params = None
                if isinstance(second, ast.Dict) and all(_const_str(k) for k in second.keys):
                    params = {_const_str(k) for k in second.keys}  # type: ignore[misc]
                    if name == "CreditCodeError":
                        params.add("code")  # added by the service that renders it
            uses.append(Use(key, where, params))
    return uses


def template_keys() -> set[str]:
    keys: set[str] = set()
    for path in SRC.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r"""\bt\(\s*["']([^"']+)["']\s*[,)]""", text))
        if re.search(r"""t\(\s*["']phase\.["']\s*~""", text):
            keys |= {f"phase.{p.value}" for p in Phase}
    return keys


# --- the catalogue -------------------------------------------------------------------------------


def test_every_message_has_english_and_chinese_with_the_same_placeholders():
    entries = catalogue()
    assert len(entries) > 50
    for key, entry in entries.items():
        assert set(entry) == {"en", "zh"}, key
        en, zh = entry["en"], entry["zh"]
        assert isinstance(en, str) and en.strip(), key
        assert isinstance(zh, str) and zh.strip(), key
        assert placeholders(en) == placeholders(zh), key
        assert has_cjk(zh) or zh == en, f"{key}: the zh text is not Chinese"


def test_every_message_formats_with_its_placeholders():
    for key, entry in catalogue().items():
        params = {name: "X" for name in placeholders(entry["en"])}
        for lang in ("en", "zh"):
            rendered = t(key, lang, **params)
            assert "{" not in rendered.replace("{X}", ""), (key, lang, rendered)


def test_the_scan_finds_multi_line_calls():
    uses = source_uses()
    keys = {u.key for u in uses}
    # Spread over several lines in the source; a line-by-line grep would miss them.
    assert {"pool.unknown-accelerator", "capacity.dimension", "price.overlap", "credit-code.check"} <= keys
    assert len(uses) > 40
    assert {"what.pool", "what.site", "what.provider", "what.rate card", "what.organisation"} <= keys


def test_every_key_used_in_the_source_exists():
    known = catalogue()
    missing = [u for u in source_uses() if u.key not in known]
    assert not missing, f"keys used but not in messages.toml: {missing}"


def test_every_key_used_in_templates_exists():
    keys = template_keys()
    assert "web.title" in keys and "phase.operational" in keys
    assert not keys - catalogue().keys()


def test_framework_keys_exist():
    known = catalogue()
    for key in VALIDATION_KEYS.values():
        assert key in known, key
    for key in ("route-not-found", "method-not-allowed", "http-error", "invalid-request", "internal"):
        assert key in known, key
    classes = [errors.DomainError, *errors.DomainError.__subclasses__()]
    for cls in classes:
        assert cls.title_key in known, cls


def test_source_passes_every_placeholder_its_message_needs():
    known = catalogue()
    short = []
    for use in source_uses():
        if use.params is None or use.key not in known:
            continue
        needed = placeholders(known[use.key]["en"])
        if not needed <= use.params:
            short.append((use, sorted(needed - use.params)))
    assert not short, f"messages rendered with a placeholder left empty: {short}"


def test_unknown_key_is_a_bug_not_a_silent_fallback():
    with pytest.raises(KeyError):
        t("no.such.key")


def test_missing_parameter_shows_its_placeholder():
    assert "{id}" in t("not-found", "en", what="pool")


# --- language negotiation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh_CN.UTF-8", "zh"),
        ("ZH-Hans", "zh"),
        ("en", "en"),
        ("fr", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_normalize_lang(value, expected):
    assert normalize_lang(value) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("en;q=0.5, zh;q=0.6", "zh"),
        ("fr-FR, de", "en"),
        ("fr, zh;q=0.1", "zh"),
        ("zh;q=bogus, en;q=0.1", "en"),
        (None, "en"),
    ],
)
def test_negotiate_accept_language(header, expected):
    assert negotiate(header, "en") == expected


def test_negotiate_falls_back_to_the_default():
    assert negotiate(None, "zh") == "zh"
    assert negotiate("fr", "zh") == "zh"


# --- over HTTP -----------------------------------------------------------------------------------


def test_domain_errors_in_chinese(world):
    reg = world.regulator
    body = {
        "site_id": world.site1["id"],
        "code": "x",
        "name": "x",
        "accelerator": "H801",
        "nodes": 1,
        "cards_per_node": 8,
    }
    en = assert_problem(reg.call("POST", "/pools", json=body), 422, "pool.unknown-accelerator")
    zh = assert_problem(
        reg.call("POST", "/pools", json=body, headers={"Accept-Language": "zh-CN"}),
        422,
        "pool.unknown-accelerator",
    )
    assert not has_cjk(en["detail"]) and en["title"] == "Invalid input"
    assert has_cjk(zh["detail"]) and zh["title"] == "输入无效"
    assert "H800" in zh["detail"]
    by_query = assert_problem(reg.call("POST", "/pools?lang=zh", json=body), 422, "pool.unknown-accelerator")
    assert by_query["detail"] == zh["detail"]


def test_names_of_things_are_translated_inside_messages(world):
    zh = assert_problem(
        world.regulator.call("GET", "/pools/9999", headers={"Accept-Language": "zh"}), 404, "not-found"
    )
    assert "资源池" in zh["detail"] and "9999" in zh["detail"]
    en = assert_problem(world.regulator.call("GET", "/pools/9999"), 404, "not-found")
    assert "pool" in en["detail"]


def test_validation_errors_in_chinese(world):
    body = {
        "site_id": world.site1["id"],
        "code": "x",
        "name": "x",
        "accelerator": "H800",
        "nodes": 0,
        "cards_per_node": 8,
    }
    zh = assert_problem(world.regulator.call("POST", "/pools?lang=zh", json=body), 422, "invalid-request")
    assert "nodes 必须大于 0" in zh["detail"]
    assert zh["errors"][0]["message"] == "nodes 必须大于 0"
    price = {"price_fen_per_card_hour": 12.5, "effective_from": "2025-07-01T00:00:00Z"}
    zh = assert_problem(
        world.regulator.call(
            "POST",
            f"/pools/{world.pool1['id']}/prices",
            json=price,
            headers={"Accept-Language": "zh-CN,zh;q=0.9"},
        ),
        422,
        "invalid-request",
    )
    assert "分" in zh["detail"]


def test_authentication_errors_in_chinese(client):
    response = client.get("/api/v1/me", headers={"Accept-Language": "zh-CN"})
    problem = assert_problem(response, 401, "auth.missing")
    assert problem["title"] == "未登录"
    assert has_cjk(problem["detail"])
    response = client.get("/api/v1/me?lang=zh", headers={"Authorization": "Bearer nope"})
    assert has_cjk(assert_problem(response, 401, "auth.invalid")["detail"])


def test_explicit_lang_beats_accept_language(regulator):
    response = regulator.call("GET", "/pools/1?lang=en", headers={"Accept-Language": "zh-CN"})
    assert not has_cjk(assert_problem(response, 404, "not-found")["detail"])


def test_credit_code_errors_in_chinese(regulator):
    code = factories.credit_code()
    bad = code[:17] + ("0" if code[17] != "0" else "1")
    body = {"credit_code": bad, "name": "x", "kind": "enterprise"}
    zh = assert_problem(regulator.call("POST", "/orgs?lang=zh", json=body), 422, "credit-code.check")
    assert "统一社会信用代码" in zh["detail"] and bad in zh["detail"]
