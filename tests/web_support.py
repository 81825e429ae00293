"""A signed-in web visitor for page tests: a TestClient that keeps cookies, asks for HTML and never
follows redirects on its own (so tests see where a page sends the browser)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

HTML = {"Accept": "text/html,application/xhtml+xml"}


class Visitor:
    def __init__(self, app: Any, token: str | None = None, *, lang: str = "en", root_path: str = "") -> None:
        self.client = TestClient(app, follow_redirects=False, root_path=root_path)
        self.client.headers.update(HTML | {"Accept-Language": lang})
        if token is not None:
            self.login(token)

    def login(self, token: str, next_path: str = "/") -> Any:
        form = self.client.get("/login")
        assert form.status_code == 200, form.text
        response = self.client.post(
            "/login", data={"token": token, "csrf": self.client.cookies["sw_login_csrf"], "next": next_path}
        )
        return response

    def get(self, path: str, expect: int | None = 200, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        if expect is not None:
            assert response.status_code == expect, f"{path}: {response.status_code} {response.text[-2000:]}"
        return response

    def post(self, path: str, data: dict[str, Any], expect: int | None = None) -> Any:
        response = self.client.post(path, data=data)
        if expect is not None:
            assert response.status_code == expect, f"{path}: {response.status_code} {response.text[-2000:]}"
        return response

    def csrf(self, path: str = "/jobs") -> str:
        """The CSRF value a page of ours puts in its forms."""
        match = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert match, "no CSRF field on the page"
        return match.group(1)


def table_ids(html: str, table: str = "list") -> list[int]:
    """The first column's numbers of a table on the page (list pages put the id there)."""
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>\s*<td[^>]*>(?:<[^>]+>)*\s*(?:<a [^>]*>)?([\d,]+)", body)
    return [int(r.replace(",", "")) for r in rows]
