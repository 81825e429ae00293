"""Load the Pinghu demo region from pinghu.toml, idempotently: what exists (by code, credit code or user
name) is left as it is, what is missing is created through the same services the API uses."""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanwang import catalog
from suanwang.config import Settings
from suanwang.db.session import engine_for, session_scope, upgrade
from suanwang.registry import transfer
from suanwang.settlement import funds
from suanwang.supply import service as supply
from suanwang.supply.models import Pool, Provider, RateCard, Site
from suanwang.supply.schemas import PoolCreate, ProviderCreate, RateCardCreate, SiteCreate
from suanwang.tenants import service as tenants
from suanwang.tenants.access import Principal
from suanwang.tenants.models import Organisation, Role, User
from suanwang.tenants.schemas import OrgCreate, UserCreate
from suanwang.timeutil import SHANGHAI, utcnow
from suanwang.units import yuan_to_fen
from suanwang.vouchers import grants, programmes
from suanwang.vouchers.models import VoucherApplication, VoucherProgramme
from suanwang.vouchers.schemas import ApplicationCreate, ProgrammeCreate, Review

TOKEN_FILE = "demo-regulator.token"
SIMULATED_TIME_SCALE = 0.01


@dataclass
class DemoResult:
    regulator_token: str
    logins: dict[str, str] = field(default_factory=dict)  # user name -> token, for the web dashboard
    created: Counter[str] = field(default_factory=Counter)
    existing: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        kinds = sorted(set(self.created) | set(self.existing))
        parts = [f"{kind} {self.created[kind]} new / {self.existing[kind]} kept" for kind in kinds]
        return "; ".join(parts)


DEMO_WALLET_YUAN = 500_000


def demo_data() -> dict[str, Any]:
    text = resources.files("suanwang.demo").joinpath("pinghu.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def nodes_for(pflops: Decimal, accelerator: str, cards_per_node: int) -> int:
    """Nodes that give `pflops` of dense FP16 on `accelerator`, rounded half up, at least one."""
    found = catalog.find(accelerator)
    if found is None:
        raise ValueError(f"demo pool uses unknown accelerator {accelerator}")
    cards = pflops * 1000 / found.dense_fp16_tflops
    nodes = int((cards / cards_per_node).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return max(nodes, 1)


def shanghai_midnight(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(0), tzinfo=SHANGHAI)


def _token(settings: Settings, file_name: str = TOKEN_FILE) -> str:
    path = Path(settings.data_dir) / file_name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = tenants.new_secret()
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret


class _Loader:
    def __init__(self, session: Session, principal: Principal, result: DemoResult) -> None:
        self.session = session
        self.principal = principal
        self.result = result
        self.now = utcnow()

    def _find(self, model: Any, **by: Any) -> Any:
        return self.session.scalar(select(model).filter_by(**by))

    def _note(self, kind: str, created: bool) -> None:
        (self.result.created if created else self.result.existing)[kind] += 1

    def provider(self, data: dict[str, Any]) -> None:
        provider = self._find(Provider, code=data["code"])
        self._note("providers", provider is None)
        if provider is None:
            fields = {k: data[k] for k in ProviderCreate.model_fields if k in data}
            provider = supply.create_provider(
                session=self.session, principal=self.principal, data=ProviderCreate(**fields)
            )
        if "operator" in data:
            self.user(data["operator"], Role.PROVIDER_OPERATOR, provider_id=provider.id)
        for site in data.get("site", []):
            self.site(provider, site)

    def site(self, provider: Provider, data: dict[str, Any]) -> None:
        site = self._find(Site, code=data["code"])
        self._note("sites", site is None)
        if site is None:
            fields = {
                k: data[k]
                for k in ("code", "name", "name_en", "phase", "built_on", "operational_on", "region")
                if k in data
            }
            # Sites without hardware here run on the simulated backend: an hour of work passes in 36 s.
            fields["backend_kind"] = data.get("backend_kind", "simulated")
            fields["connection"] = data.get("connection", {"time_scale": SIMULATED_TIME_SCALE})
            site = supply.create_site(
                session=self.session,
                principal=self.principal,
                data=SiteCreate(provider_id=provider.id, **fields),
            )
        for pool in data.get("pool", []):
            self.pool(site, pool)

    def pool(self, site: Site, data: dict[str, Any]) -> None:
        pool = self._find(Pool, code=data["code"])
        self._note("pools", pool is None)
        if pool is None:
            cards_per_node = int(data["cards_per_node"])
            if "nodes" in data:
                nodes = int(data["nodes"])
            else:
                nodes = nodes_for(Decimal(str(data["pflops"])), data["accelerator"], cards_per_node)
            pool = supply.create_pool(
                session=self.session,
                principal=self.principal,
                data=PoolCreate(
                    site_id=site.id,
                    code=data["code"],
                    name=data["name"],
                    accelerator=data["accelerator"],
                    nodes=nodes,
                    cards_per_node=cards_per_node,
                    security_zone=data.get("zone", "public"),
                ),
            )
        for price in data.get("prices", []):
            self.price(pool, price)

    def price(self, pool: Pool, data: dict[str, Any]) -> None:
        start = shanghai_midnight(data["from"])
        exists = self._find(RateCard, pool_id=pool.id, effective_from=start, retired_at=None) is not None
        self._note("rate cards", not exists)
        if exists:
            return
        supply.add_rate_card(
            session=self.session,
            principal=self.principal,
            pool_id=pool.id,
            data=RateCardCreate(
                price_fen_per_card_hour=int(data["fen"]),
                effective_from=start,
                effective_until=shanghai_midnight(data["until"]) if "until" in data else None,
            ),
            now=self.now,
        )

    def org(self, data: dict[str, Any]) -> None:
        org = self._find(Organisation, credit_code=data["credit_code"])
        self._note("organisations", org is None)
        if org is None:
            fields = {k: data[k] for k in OrgCreate.model_fields if k in data}
            org = tenants.create_org(session=self.session, principal=self.principal, data=OrgCreate(**fields))
            # Demo tenants start with money in their wallets, as if they had paid the platform.
            funds.top_up(
                self.session,
                principal=self.principal,
                org_id=org.id,
                amount_fen=yuan_to_fen(data.get("wallet_yuan", DEMO_WALLET_YUAN)),
                reason="demo opening balance",
                now=self.now,
            )
        if "admin" in data:
            self.user(data["admin"], Role.TENANT_ADMIN, org_id=org.id)

    def registry(self) -> None:
        """The enterprise registry as officials keep it: three spreadsheets (enterprises, projects since
        2024, monthly output of 2023-2024) imported like any official's files. Their figures are the
        report's: 2023 output of the chain's 规上 enterprises 2.744 billion yuan, January-September 2024
        3.952 billion (+150.9 %); 29 projects signed since 2024 worth 29.04 billion yuan, 4 of them
        foreign-funded worth 320 million USD."""
        folder = resources.files("suanwang.demo").joinpath("registry")
        for dataset in ("enterprises", "projects", "output"):
            report = transfer.import_file(
                self.session,
                principal=self.principal,
                dataset=dataset,
                data=folder.joinpath(f"{dataset}.csv").read_bytes(),
                fmt="csv",
                dry_run=False,
                now=self.now,
                lang="en",
            )
            if report.errors:
                raise ValueError(f"demo registry file {dataset}.csv: {report.errors}")
            self.result.created[f"registry {dataset}"] += report.created
            self.result.existing[f"registry {dataset}"] += report.updated + report.unchanged

    def voucher_programme(self, data: dict[str, Any]) -> VoucherProgramme:
        """The preset opened for the current calendar year (so the demo's programme is always open)."""
        year = self.now.astimezone(SHANGHAI).year
        code = f"pinghu-{year}"
        found = self._find(VoucherProgramme, code=code)
        self._note("voucher programmes", found is None)
        if found is not None:
            return found
        body = ProgrammeCreate(
            preset=data["preset"], code=code, starts_on=date(year, 1, 1), ends_on=date(year, 12, 31)
        )
        return programmes.create_programme(self.session, principal=self.principal, data=body, now=self.now)

    def voucher_grant(self, programme: VoucherProgramme, data: dict[str, Any]) -> None:
        """A tenant's application, approved in full (as its admin would apply and the regulator approve)."""
        org = self._find(Organisation, credit_code=data["org"])
        found = self._find(VoucherApplication, programme_id=programme.id, org_id=org.id)
        self._note("voucher grants", found is None)
        if found is None:
            application = grants.apply(
                self.session,
                principal=self.principal,
                data=ApplicationCreate(
                    programme_id=programme.id,
                    org_id=org.id,
                    requested_fen=yuan_to_fen(data["amount_yuan"]),
                    purpose=data["purpose"],
                ),
                now=self.now,
            )
            grants.review(
                self.session,
                principal=self.principal,
                application_id=application.id,
                data=Review(decision="approve", reason="demo: complete application"),
                now=self.now,
            )

    def user(self, name: str, role: Role, **scope: int) -> None:
        user = self._find(User, name=name)
        self._note("users", user is None)
        if user is None:
            tenants.create_user(
                session=self.session, principal=self.principal, data=UserCreate(name=name, role=role, **scope)
            )


def load_demo(settings: Settings) -> DemoResult:
    """Create or complete the demo region; returns the regulator token to print."""
    url = settings.effective_database_url
    upgrade(url)
    data = demo_data()
    secret = _token(settings)
    result = DemoResult(regulator_token=secret)
    with session_scope(engine_for(url), actor="demo:loader") as session:
        regulator = tenants.ensure_regulator_token(
            session=session, secret=secret, user_name=data["regulator"]["name"], now=utcnow()
        )
        principal = Principal(user_id=regulator.id, name=regulator.name, role=Role.REGULATOR)
        loader = _Loader(session, principal, result)
        for provider in data["provider"]:
            loader.provider(provider)
        for org in data["org"]:
            loader.org(org)
        loader.registry()
        programme = loader.voucher_programme(data["voucher_programme"])
        for grant in data["voucher_grant"]:
            loader.voucher_grant(programme, grant)
        for name in data["web_logins"]:
            user = session.scalar(select(User).where(User.name == name))
            result.logins[name] = _token(settings, f"demo-{name}.token")
            tenants.ensure_token(session=session, user=user, secret=result.logins[name], now=utcnow())
    return result
