"""Start-up: SUANWANG_ADMIN_TOKEN makes a regulator token; the embedded database migrates itself."""

from __future__ import annotations

from fastapi.testclient import TestClient

from suanwang.api.app import create_app
from suanwang.config import Settings
from suanwang.db.session import current_revision


def test_admin_token_from_settings_is_a_regulator_token(db_url, clean_engine, tmp_path):
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path,
        admin_token="sw_bootstrap_secret_value_123",
        serve_controller=False,
    )
    for _ in range(2):  # idempotent across restarts
        with TestClient(create_app(settings, clean_engine)) as client:
            me = client.get("/api/v1/me", headers={"Authorization": "Bearer sw_bootstrap_secret_value_123"})
            assert me.status_code == 200 and me.json()["role"] == "regulator"
            other = client.get(
                "/api/v1/me", headers={"Authorization": "Bearer sw_bootstrap_secret_value_124"}
            )
            assert other.status_code == 401


def test_server_migrates_the_embedded_database_on_start(tmp_path):
    settings = Settings(data_dir=tmp_path / "fresh", serve_controller=False)
    assert settings.is_embedded
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200  # the schema exists: the page reads capacity
    assert current_revision(settings.effective_database_url) is not None
