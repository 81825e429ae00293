"""Take the README's screenshots of the dashboard (docs/screenshots/*-zh.png and *-en.png) on the Pinghu
demo: start `suanwang demo` in a scratch data dir, let its tenants submit work for a while, then sign in as
the regulator, a tenant and a provider in Debian's Chromium and save the main pages in both languages.

    .venv/bin/python scripts/screenshots.py [--warm-up 60]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = next(p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists())
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# (who signs in, page, file stem)
SHOTS = [
    ("regulator", "/region", "region"),
    ("regulator", "/registry/enterprises", "enterprises"),
    ("trade-ai-admin", "/tenant", "tenant"),
    ("trade-ai-admin", "/jobs/new", "submit"),
    ("trade-ai-admin", "/jobs", "jobs"),
    ("govdc-ops", "/provider", "provider"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_in(page: Page, base: str, token: str) -> None:
    page.goto(f"{base}/login")
    page.locator("input[name=token]").fill(token)
    page.locator("#login button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)


def shoot(base: str, tokens: dict[str, str]) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for locale, suffix in (("zh-CN", "zh"), ("en-US", "en")):
            context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
            page = context.new_page()
            signed_in = None
            for user, path, stem in SHOTS:
                if user != signed_in:
                    context.clear_cookies()
                    log_in(page, base, tokens[user])
                    signed_in = user
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                if path == "/jobs/new":
                    page.locator("input[name=command]").fill("python3 finetune.py --model trade-7b")
                    page.locator("input[name=cards]").fill("8")
                    page.locator("#quote table, #quote .empty").first.wait_for()
                page.wait_for_timeout(800)  # chart animations
                page.screenshot(path=str(OUT / f"{stem}-{suffix}.png"), full_page=True)
                print(f"docs/screenshots/{stem}-{suffix}.png")
            context.close()
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-up", type=int, default=60, help="seconds of demo workload before the shots")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        env = os.environ | {"SUANWANG_DATA_DIR": data_dir, "SUANWANG_LANG": "zh"}
        env.pop("SUANWANG_DATABASE_URL", None)
        suanwang = str(Path(sys.executable).with_name("suanwang"))
        server = subprocess.Popen([suanwang, "demo", "--port", str(port)], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            time.sleep(args.warm_up)
            tokens = {
                name: (Path(data_dir) / f"demo-{name}.token").read_text().strip()
                for name in ("regulator", "trade-ai-admin", "govdc-ops")
            }
            shoot(base, tokens)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
