"""The plain home page: the region's capacity summary in the visitor's language."""

from __future__ import annotations

from tests import factories


def test_home_page_summarises_capacity_in_english_and_chinese(regulator):
    provider = factories.provider(regulator, name="平湖测试中心", name_en="Pinghu Test Centre")
    site = factories.site(regulator, provider["id"], phase="operational")
    factories.pool(regulator, site["id"], accelerator="A800", nodes=3, cards_per_node=8)
    english = regulator.client.get("/", headers={"Accept-Language": "en-US"})
    assert english.status_code == 200
    assert "Pinghu Test Centre" in english.text and "Operational capacity" in english.text
    assert "7.5" in english.text  # 24 A800 × 312 TFLOPS = 7.488 PFLOPS
    chinese = regulator.client.get("/?lang=zh")
    assert "平湖测试中心" in chinese.text and "已投运算力" in chinese.text


def test_home_page_says_what_to_do_when_empty(client):
    page = client.get("/")
    assert page.status_code == 200 and "suanwang demo" in page.text
