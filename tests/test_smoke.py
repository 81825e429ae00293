from tests import factories


def test_healthz_and_whoami(regulator):
    assert regulator.client.get("/healthz").json()["status"] == "ok"
    me = regulator.get("/me")
    assert me["role"] == "regulator"


def test_provider_site_pool(regulator):
    p = factories.provider(regulator)
    s = factories.site(regulator, p["id"])
    pool = factories.pool(regulator, s["id"])
    assert pool["cards"] == 16
    assert pool["provider_id"] == p["id"]
