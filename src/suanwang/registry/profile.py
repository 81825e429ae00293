"""An enterprise's profile: its registry record, tiers, projects, recent output and — when it is also a
tenant of the platform — what it used, was charged and was subsidised."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanwang.jobs.models import Job
from suanwang.metering.models import UsageRecord
from suanwang.registry import enterprises, output
from suanwang.registry import taxonomy as chain
from suanwang.registry.models import Enterprise, Project
from suanwang.registry.schemas import (
    EnterpriseProfile,
    OutputRead,
    PlatformUse,
    ProjectRead,
    TierRead,
)
from suanwang.vouchers import grants as voucher_grants
from suanwang.vouchers.models import VoucherGrant, VoucherProgramme, VoucherRedemption


def platform_use(session: Session, org_id: int) -> PlatformUse:
    jobs = {
        state.value: count
        for state, count in session.execute(
            select(Job.state, func.count()).where(Job.org_id == org_id).group_by(Job.state)
        )
    }
    # Metered usage (what settlement rated), and what the jobs were charged.
    card_seconds = session.scalar(
        select(func.coalesce(func.sum(UsageRecord.card_seconds), 0)).where(UsageRecord.org_id == org_id)
    )
    charged = session.scalar(select(func.coalesce(func.sum(Job.charged_fen), 0)).where(Job.org_id == org_id))
    subsidy = session.scalar(
        select(
            func.coalesce(func.sum(VoucherRedemption.subsidy_fen - VoucherRedemption.clawed_back_fen), 0)
        ).where(VoucherRedemption.org_id == org_id)
    )
    grants = []
    for grant, code in session.execute(
        select(VoucherGrant, VoucherProgramme.code)
        .join(VoucherProgramme, VoucherProgramme.id == VoucherGrant.programme_id)
        .where(VoucherGrant.org_id == org_id)
        .order_by(VoucherGrant.id)
    ):
        read = voucher_grants.read_grant(session, grant)
        grants.append(
            {
                "grant_id": grant.id,
                "programme": code,
                "amount_fen": read.amount_fen,
                "redeemed_fen": read.redeemed_fen,
                "available_fen": read.available_fen,
                "status": read.status,
            }
        )
    return PlatformUse(
        org_id=org_id,
        jobs=jobs,
        card_seconds=int(card_seconds or 0),
        charged_fen=int(charged or 0),
        subsidy_fen=int(subsidy or 0),
        grants=grants,
    )


def profile(session: Session, enterprise: Enterprise) -> EnterpriseProfile:
    taxonomy = chain.load(session)
    projects = session.scalars(
        select(Project).where(Project.enterprise_id == enterprise.id).order_by(Project.signed_on, Project.id)
    )
    return EnterpriseProfile(
        enterprise=enterprises.read(enterprise, taxonomy),
        tiers=[TierRead.model_validate(t) for t in enterprises.tiers(session, enterprise.id)],
        projects=[ProjectRead.model_validate(p) for p in projects],
        output=[OutputRead.model_validate(r) for r in output.history(session, enterprise.id)],
        platform=platform_use(session, enterprise.org_id) if enterprise.org_id is not None else None,
    )
