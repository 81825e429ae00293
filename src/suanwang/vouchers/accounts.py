"""The ledger accounts of the voucher programmes, and why each cap holds by construction.

Money (ledger "CNY"):
- `voucher/<programme id>/budget` (voucher_budget; debits ≤ credits): funded with the programme's total
  budget from `external/funding` when the programme is created; grants are drawn from it, so the grants
  of a programme can never exceed its budget.
- `voucher/<programme id>/grant/<application id>` (voucher_grant; debits ≤ credits; owned by the
  organisation): funded with the approved amount; redemptions pay from it, so a tenant never redeems
  more than it was granted; at expiry what is left goes back to the budget and the account is closed.

Quota (ledger "QUOTA", counted in fen but not money): a programme with an annual per-enterprise cap
opens `voucher/<programme id>/cap/<org id>/<year>` (debits ≤ credits) with the tenant's cap from
`voucher/<programme id>/cap-source`; every redemption moves its subsidy from it to
`voucher/<programme id>/cap-used` in the same linked chain as the money, so the ledger itself refuses
a subsidy above the cap, whatever races.
"""

from __future__ import annotations

from suanwang.ledger.rules import AccountSpec
from suanwang.settlement.chart import LEDGER

QUOTA = "QUOTA"
BUDGET_CODE = "voucher_budget"
GRANT_CODE = "voucher_grant"
CAP_CODE = "voucher_cap"


def budget(programme_id: int) -> AccountSpec:
    return AccountSpec(
        key=f"voucher/{programme_id}/budget",
        ledger=LEDGER,
        code=BUDGET_CODE,
        owner_kind="voucher_programme",
        owner_id=programme_id,
        debits_must_not_exceed_credits=True,
    )


def grant(programme_id: int, application_id: int, org_id: int) -> AccountSpec:
    return AccountSpec(
        key=f"voucher/{programme_id}/grant/{application_id}",
        ledger=LEDGER,
        code=GRANT_CODE,
        owner_kind="organisation",
        owner_id=org_id,
        debits_must_not_exceed_credits=True,
    )


def cap(programme_id: int, org_id: int, year: int) -> AccountSpec:
    return AccountSpec(
        key=f"voucher/{programme_id}/cap/{org_id}/{year}",
        ledger=QUOTA,
        code=CAP_CODE,
        owner_kind="organisation",
        owner_id=org_id,
        debits_must_not_exceed_credits=True,
    )


def cap_source(programme_id: int) -> AccountSpec:
    return AccountSpec(key=f"voucher/{programme_id}/cap-source", ledger=QUOTA, code="voucher_cap_source")


def cap_used(programme_id: int) -> AccountSpec:
    return AccountSpec(key=f"voucher/{programme_id}/cap-used", ledger=QUOTA, code="voucher_cap_used")
