"""Chart of accounts: which ledger accounts the platform keeps, their keys and their limits.

All money is in one ledger, "CNY", in fen. The accounts, by key (code; limit flag):

- `wallet/org/<id>` (tenant_wallet; debits ≤ credits + credit limit): top-ups in, holds and charges out.
  Prepaid: it pays no more than was put in, plus a credit limit the regulator sets.
- `arrears/org/<id>` (tenant_arrears; credits ≤ debits): what a tenant owes when a job ran past its
  hold and the wallet could not pay the rest; repaid from the next top-up.
- `provider/<id>/payable` (provider_payable; debits ≤ credits): providers' share of charges in,
  payouts out (never more than is owed).
- `platform/fee` (platform_fee; debits ≤ credits): the platform's fee on every charge.
- `platform/clearing` (clearing): holds land here; a charge leaves it to the providers and the fee.
- `external/funding` (external): the world outside; top-ups come from it, refunds and payouts go to it.
- `voucher/...`: the compute-voucher programmes' budgets, grants and cap quotas (see vouchers/accounts.py).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from functools import cache

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from suanwang.db.query import among_bound, dialect_of
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount
from suanwang.ledger.rules import AccountResult, AccountSpec
from suanwang.timeutil import utcnow

LEDGER = "CNY"


class Code(enum.StrEnum):
    WALLET = "tenant_wallet"
    ARREARS = "tenant_arrears"
    PROVIDER = "provider_payable"
    FEE = "platform_fee"
    CLEARING = "clearing"
    EXTERNAL = "external"


FEE = AccountSpec(key="platform/fee", ledger=LEDGER, code=Code.FEE, debits_must_not_exceed_credits=True)
CLEARING = AccountSpec(key="platform/clearing", ledger=LEDGER, code=Code.CLEARING)
EXTERNAL = AccountSpec(key="external/funding", ledger=LEDGER, code=Code.EXTERNAL)


def wallet(org_id: int) -> AccountSpec:
    return AccountSpec(
        key=f"wallet/org/{org_id}",
        ledger=LEDGER,
        code=Code.WALLET,
        owner_kind="organisation",
        owner_id=org_id,
        debits_must_not_exceed_credits=True,
    )


def arrears(org_id: int) -> AccountSpec:
    return AccountSpec(
        key=f"arrears/org/{org_id}",
        ledger=LEDGER,
        code=Code.ARREARS,
        owner_kind="organisation",
        owner_id=org_id,
        credits_must_not_exceed_debits=True,
    )


def provider(provider_id: int) -> AccountSpec:
    return AccountSpec(
        key=f"provider/{provider_id}/payable",
        ledger=LEDGER,
        code=Code.PROVIDER,
        owner_kind="provider",
        owner_id=provider_id,
        debits_must_not_exceed_credits=True,
    )


@cache
def _by_key(dialect: str) -> Select[tuple[LedgerAccount]]:
    return select(LedgerAccount).where(among_bound(dialect, LedgerAccount.key, "keys"))


def ensure(session: Session, specs: Iterable[AccountSpec]) -> dict[str, LedgerAccount]:
    """The accounts of `specs` by key, created on first use (idempotent; one query when they exist)."""
    wanted = {spec.key: spec for spec in specs}
    found = {
        account.key: account
        for account in session.scalars(_by_key(dialect_of(session)), {"keys": list(wanted)})
    }
    missing = [spec for key, spec in wanted.items() if key not in found]
    if missing:
        try:
            # In a savepoint: when another transaction creates the same account first, ours waits for it,
            # fails on the unique key, and reads the account it made instead.
            with session.begin_nested():
                outcomes = ledger.create_accounts(session, missing, now=utcnow())
        except IntegrityError:
            return ensure(session, specs=wanted.values())
        for spec, outcome in zip(missing, outcomes, strict=True):
            if outcome.result not in (AccountResult.OK, AccountResult.EXISTS) or outcome.account is None:
                raise RuntimeError(f"account {spec.key}: {outcome.result}")
            found[spec.key] = outcome.account
    return found
