"""REST routes of the tenants slice: /orgs, /users, /tokens, /me."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from suanwang.api.deps import CtxDep, PageDep, get_settings
from suanwang.api.idempotency import IdemDep, created
from suanwang.api.schemas import PROBLEM_RESPONSES, PageRead, page_read
from suanwang.config import Settings
from suanwang.fields import Id
from suanwang.tenants import service
from suanwang.tenants.models import OrgKind, Role
from suanwang.tenants.schemas import (
    OrgCreate,
    OrgRead,
    OrgUpdate,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserRead,
    UserUpdate,
    WhoAmI,
)

router = APIRouter(tags=["tenants"], responses=PROBLEM_RESPONSES)
SettingsDep = Annotated[Settings, Depends(get_settings)]


@router.get("/me", response_model=WhoAmI)
def whoami(ctx: CtxDep) -> WhoAmI:
    p = ctx.principal
    return WhoAmI(user_id=p.user_id, name=p.name, role=p.role, org_id=p.org_id, provider_id=p.provider_id)


# --- organisations -------------------------------------------------------------------------------


@router.get("/orgs", response_model=PageRead[OrgRead])
def list_orgs(
    ctx: CtxDep,
    paging: PageDep,
    settings: SettingsDep,
    kind: OrgKind | None = None,
    is_sme: bool | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    include_retired: bool = False,
) -> dict[str, Any]:
    result = service.list_orgs(
        session=ctx.session,
        principal=ctx.principal,
        request=paging,
        kind=kind,
        is_sme=is_sme,
        q=q,
        include_retired=include_retired,
    )
    return page_read(result, lambda o: service.read_org(o, region_code=settings.region_division_code))


@router.post("/orgs", status_code=201, response_model=OrgRead)
def create_org(body: OrgCreate, ctx: CtxDep, idem: IdemDep, settings: SettingsDep) -> JSONResponse:
    return created(
        ctx,
        idem,
        lambda: service.read_org(
            service.create_org(session=ctx.session, principal=ctx.principal, data=body),
            region_code=settings.region_division_code,
        ),
    )


@router.get("/orgs/{org_id}", response_model=OrgRead)
def get_org(org_id: Id, ctx: CtxDep, settings: SettingsDep) -> OrgRead:
    org = service.get_org(session=ctx.session, principal=ctx.principal, org_id=org_id)
    return service.read_org(org, region_code=settings.region_division_code)


@router.patch("/orgs/{org_id}", response_model=OrgRead)
def update_org(org_id: Id, body: OrgUpdate, ctx: CtxDep, settings: SettingsDep) -> OrgRead:
    org = service.update_org(session=ctx.session, principal=ctx.principal, org_id=org_id, data=body)
    ctx.session.commit()
    return service.read_org(org, region_code=settings.region_division_code)


@router.post("/orgs/{org_id}/retire", response_model=OrgRead)
def retire_org(org_id: Id, ctx: CtxDep, settings: SettingsDep) -> OrgRead:
    org = service.retire_org(session=ctx.session, principal=ctx.principal, org_id=org_id, now=ctx.now)
    ctx.session.commit()
    return service.read_org(org, region_code=settings.region_division_code)


# --- users ---------------------------------------------------------------------------------------


@router.get("/users", response_model=PageRead[UserRead])
def list_users(
    ctx: CtxDep,
    paging: PageDep,
    role: Role | None = None,
    org_id: Id | None = None,
    provider_id: Id | None = None,
    include_retired: bool = False,
) -> dict[str, Any]:
    result = service.list_users(
        session=ctx.session,
        principal=ctx.principal,
        request=paging,
        role=role,
        org_id=org_id,
        provider_id=provider_id,
        include_retired=include_retired,
    )
    return page_read(result, UserRead.model_validate)


@router.post("/users", status_code=201, response_model=UserRead)
def create_user(body: UserCreate, ctx: CtxDep, idem: IdemDep) -> JSONResponse:
    return created(
        ctx,
        idem,
        lambda: UserRead.model_validate(
            service.create_user(session=ctx.session, principal=ctx.principal, data=body)
        ),
    )


@router.get("/users/{user_id}", response_model=UserRead)
def get_user(user_id: Id, ctx: CtxDep) -> UserRead:
    return UserRead.model_validate(
        service.get_user(session=ctx.session, principal=ctx.principal, user_id=user_id)
    )


@router.patch("/users/{user_id}", response_model=UserRead)
def update_user(user_id: Id, body: UserUpdate, ctx: CtxDep) -> UserRead:
    user = service.update_user(session=ctx.session, principal=ctx.principal, user_id=user_id, data=body)
    ctx.session.commit()
    return UserRead.model_validate(user)


@router.post("/users/{user_id}/retire", response_model=UserRead)
def retire_user(user_id: Id, ctx: CtxDep) -> UserRead:
    user = service.retire_user(session=ctx.session, principal=ctx.principal, user_id=user_id, now=ctx.now)
    ctx.session.commit()
    return UserRead.model_validate(user)


# --- tokens --------------------------------------------------------------------------------------


@router.get("/tokens", response_model=PageRead[TokenRead])
def list_tokens(ctx: CtxDep, paging: PageDep, user_id: Id | None = None) -> dict[str, Any]:
    result = service.list_tokens(
        session=ctx.session, principal=ctx.principal, request=paging, user_id=user_id
    )
    return page_read(result, TokenRead.model_validate)


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, ctx: CtxDep, idem: IdemDep) -> JSONResponse:
    def create() -> TokenCreated:
        token, secret = service.create_token(
            session=ctx.session, principal=ctx.principal, data=body, now=ctx.now
        )
        return TokenCreated(**TokenRead.model_validate(token).model_dump(), token=secret)

    return created(
        ctx,
        idem,
        create,
        secret_fields=frozenset({"token"}),
    )


@router.post("/tokens/{token_id}/revoke", response_model=TokenRead)
def revoke_token(token_id: Id, ctx: CtxDep) -> TokenRead:
    token = service.revoke_token(session=ctx.session, principal=ctx.principal, token_id=token_id, now=ctx.now)
    ctx.session.commit()
    return TokenRead.model_validate(token)
