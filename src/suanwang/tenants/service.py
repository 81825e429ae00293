"""Operations of the tenants slice: organisations, users, tokens and authentication."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from suanwang.audit.capture import act_as, user_actor
from suanwang.db.query import Page, PageRequest, among_bound, dialect_of, get_or_404, page
from suanwang.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from suanwang.tenants import credit_code
from suanwang.tenants.access import Principal, require_regulator
from suanwang.tenants.locality import is_local
from suanwang.tenants.models import ApiToken, Organisation, Role, User
from suanwang.tenants.schemas import OrgCreate, OrgRead, OrgUpdate, TokenCreate, UserCreate, UserUpdate

TOKEN_PREFIX = "sw_"
# Writing last_used_at on every request would turn reads into writes; once a minute is enough to audit.
LAST_USED_RESOLUTION = timedelta(minutes=1)
TENANT_ROLES = (Role.TENANT_ADMIN, Role.TENANT_MEMBER)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- organisations -------------------------------------------------------------------------------


def validate_credit_code(code: str) -> str:
    why = credit_code.problem(code)
    if why is not None:
        raise Invalid(why.key, code=code, **why.params)
    return code


def read_org(org: Organisation, *, region_code: str) -> OrgRead:
    data = {c: getattr(org, c) for c in OrgRead.model_fields if c != "is_local"}
    return OrgRead(**data, is_local=is_local(org.locality_code, region_code))


def create_org(*, session: Session, principal: Principal, data: OrgCreate) -> Organisation:
    """Register an organisation (the regulator onboards tenants after checking their licence)."""
    require_regulator(principal)
    code = validate_credit_code(data.credit_code)
    if session.scalar(select(Organisation.id).where(Organisation.credit_code == code)) is not None:
        raise Conflict("org.duplicate-credit-code", code=code)
    org = Organisation(
        credit_code=code,
        name=data.name,
        name_en=data.name_en,
        kind=data.kind,
        locality_code=data.locality_code or credit_code.division_code(code),
        locality_name=data.locality_name,
        is_sme=data.is_sme,
        contact_email=data.contact_email,
        affiliation_group=data.affiliation_group,
    )
    session.add(org)
    session.flush()
    from suanwang.registry.enterprises import link_org  # the registry builds on tenants, not back

    link_org(session, org)
    return org


def get_org(*, session: Session, principal: Principal, org_id: int) -> Organisation:
    org = get_or_404(session, Organisation, org_id, what="organisation")
    if not principal.belongs_to(org.id):
        raise NotFound("not-found", what="organisation", id=org_id)
    return org


def list_orgs(
    *,
    session: Session,
    principal: Principal,
    request: PageRequest,
    kind: str | None = None,
    is_sme: bool | None = None,
    q: str | None = None,
    include_retired: bool = False,
) -> Page[Organisation]:
    stmt = select(Organisation)
    if principal.is_tenant:
        stmt = stmt.where(Organisation.id == principal.org_id)
    elif not principal.is_regulator:
        stmt = stmt.where(Organisation.id.is_(None))  # operators see no tenants' records
    if kind:
        stmt = stmt.where(Organisation.kind == kind)
    if is_sme is not None:
        stmt = stmt.where(Organisation.is_sme == is_sme)
    if q:
        # % and _ in the search are literal characters, not wildcards.
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            Organisation.name.ilike(like, escape="\\")
            | Organisation.name_en.ilike(like, escape="\\")
            | (Organisation.credit_code == q)
        )
    if not include_retired:
        stmt = stmt.where(Organisation.retired_at.is_(None))
    sortable = {"id": Organisation.id, "name": Organisation.name, "created_at": Organisation.created_at}
    return page(session, stmt, request, sortable=sortable)


# Fields a tenant admin may change about its own organisation; locality, kind and SME status feed
# subsidy eligibility, so only the regulator changes them.
TENANT_EDITABLE_ORG_FIELDS = {"name", "name_en", "contact_email"}


def update_org(*, session: Session, principal: Principal, org_id: int, data: OrgUpdate) -> Organisation:
    org = get_org(session=session, principal=principal, org_id=org_id)
    changes = data.model_dump(exclude_unset=True)
    if not principal.is_regulator:
        if principal.role is not Role.TENANT_ADMIN:
            raise Forbidden(
                "access.role-required", roles="tenant_admin, regulator", role=principal.role.value
            )
        locked = sorted(set(changes) - TENANT_EDITABLE_ORG_FIELDS)
        if locked:
            raise Forbidden("org.fields-regulator-only", fields=", ".join(locked))
    _apply(org, changes)
    session.flush()
    return org


def retire_org(*, session: Session, principal: Principal, org_id: int, now: datetime) -> Organisation:
    require_regulator(principal)
    org = get_org(session=session, principal=principal, org_id=org_id)
    if org.retired_at is None:
        org.retired_at = now
    retire_members(session=session, now=now, org_id=org.id)
    return org


# --- users ---------------------------------------------------------------------------------------


def _check_user_scope(role: Role, org_id: int | None, provider_id: int | None) -> None:
    if role in TENANT_ROLES and (org_id is None or provider_id is not None):
        raise Invalid("user.tenant-needs-org")
    if role is Role.PROVIDER_OPERATOR and (provider_id is None or org_id is not None):
        raise Invalid("user.operator-needs-provider")
    if role is Role.REGULATOR and (org_id is not None or provider_id is not None):
        raise Invalid("user.regulator-no-scope")


def create_user(*, session: Session, principal: Principal, data: UserCreate) -> User:
    """Regulator: anyone. Tenant admin: users of its organisation. Operator: operators of its provider."""
    org_id, provider_id = data.org_id, data.provider_id
    if principal.role is Role.TENANT_ADMIN:
        org_id = org_id if org_id is not None else principal.org_id
        if data.role not in TENANT_ROLES or org_id != principal.org_id:
            raise Forbidden("user.create-outside-scope")
    elif principal.role is Role.PROVIDER_OPERATOR:
        provider_id = provider_id if provider_id is not None else principal.provider_id
        if data.role is not Role.PROVIDER_OPERATOR or provider_id != principal.provider_id:
            raise Forbidden("user.create-outside-scope")
    elif not principal.is_regulator:
        raise Forbidden("access.role-required", roles="regulator, tenant_admin", role=principal.role.value)
    _check_user_scope(data.role, org_id, provider_id)
    if org_id is not None:
        org = get_or_404(session, Organisation, org_id, what="organisation")
        if org.retired_at is not None:
            raise Conflict("retired", what="organisation", id=org_id)
    if provider_id is not None:
        from suanwang.supply.models import Provider

        get_or_404(session, Provider, provider_id, what="provider")
    if session.scalar(select(User.id).where(User.name == data.name)) is not None:
        raise Conflict("user.duplicate-name", name=data.name)
    user = User(
        name=data.name,
        display_name=data.display_name,
        email=data.email,
        role=data.role,
        org_id=org_id,
        provider_id=provider_id,
    )
    session.add(user)
    session.flush()
    return user


def _can_manage_user(principal: Principal, user: User) -> bool:
    if principal.is_regulator or principal.user_id == user.id:
        return True
    if principal.role is Role.TENANT_ADMIN:
        return user.org_id is not None and user.org_id == principal.org_id
    if principal.role is Role.PROVIDER_OPERATOR:
        return user.provider_id is not None and user.provider_id == principal.provider_id
    return False


def _can_see_user(principal: Principal, user: User) -> bool:
    if _can_manage_user(principal, user):
        return True
    return principal.is_tenant and user.org_id == principal.org_id


def get_user(*, session: Session, principal: Principal, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not _can_see_user(principal, user):
        raise NotFound("not-found", what="user", id=user_id)
    return user


def list_users(
    *,
    session: Session,
    principal: Principal,
    request: PageRequest,
    role: str | None = None,
    org_id: int | None = None,
    provider_id: int | None = None,
    include_retired: bool = False,
) -> Page[User]:
    stmt = select(User)
    if principal.is_tenant:
        stmt = stmt.where(User.org_id == principal.org_id)
    elif principal.role is Role.PROVIDER_OPERATOR:
        stmt = stmt.where(User.provider_id == principal.provider_id)
    if role:
        stmt = stmt.where(User.role == role)
    if org_id is not None:
        stmt = stmt.where(User.org_id == org_id)
    if provider_id is not None:
        stmt = stmt.where(User.provider_id == provider_id)
    if not include_retired:
        stmt = stmt.where(User.retired_at.is_(None))
    sortable = {"id": User.id, "name": User.name, "created_at": User.created_at}
    return page(session, stmt, request, sortable=sortable)


def update_user(*, session: Session, principal: Principal, user_id: int, data: UserUpdate) -> User:
    user = get_user(session=session, principal=principal, user_id=user_id)
    if not _can_manage_user(principal, user):
        raise Forbidden("user.manage-outside-scope")
    changes = data.model_dump(exclude_unset=True)
    new_role = changes.get("role")
    if new_role is not None and new_role != user.role:
        if principal.user_id == user.id and not principal.is_regulator:
            raise Forbidden("user.own-role")
        if not principal.is_regulator and {new_role, user.role} - set(TENANT_ROLES):
            raise Forbidden("user.manage-outside-scope")
        _check_user_scope(new_role, user.org_id, user.provider_id)
    _apply(user, changes)
    session.flush()
    return user


def retire_user(*, session: Session, principal: Principal, user_id: int, now: datetime) -> User:
    user = get_user(session=session, principal=principal, user_id=user_id)
    if not _can_manage_user(principal, user) or principal.user_id == user.id:
        raise Forbidden("user.manage-outside-scope")
    _retire(user, now)
    session.flush()
    return user


def _retire(user: User, now: datetime) -> None:
    """A retired user signs in no more: its tokens are revoked with it."""
    if user.retired_at is None:
        user.retired_at = now
    for token in user.tokens:
        if token.revoked_at is None:
            token.revoked_at = now


def retire_members(
    *, session: Session, now: datetime, org_id: int | None = None, provider_id: int | None = None
) -> None:
    """Retire every user of a retired organisation or provider (the caller checked its right to)."""
    stmt = select(User).where(User.retired_at.is_(None))
    if org_id is not None:
        stmt = stmt.where(User.org_id == org_id)
    elif provider_id is not None:
        stmt = stmt.where(User.provider_id == provider_id)
    else:
        raise ValueError("retire_members needs org_id or provider_id")
    for user in session.scalars(stmt):
        _retire(user, now)
    session.flush()


# --- tokens --------------------------------------------------------------------------------------


def _insert_token(
    session: Session, user: User, name: str, secret: str, now: datetime, expires_at: datetime | None
) -> ApiToken:
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:10],
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token


def create_token(
    *, session: Session, principal: Principal, data: TokenCreate, now: datetime
) -> tuple[ApiToken, str]:
    """Issue a token; the secret is returned once and only its hash is stored."""
    user_id = data.user_id if data.user_id is not None else principal.user_id
    user = get_user(session=session, principal=principal, user_id=user_id)
    if not _can_manage_user(principal, user):
        raise Forbidden("user.manage-outside-scope")
    if user.retired_at is not None:
        raise Conflict("retired", what="user", id=user.id)
    expires_at = data.expires_at
    if expires_at is not None and expires_at <= now:
        raise Invalid("token.expiry-past")
    secret = new_secret()
    return _insert_token(session, user, data.name, secret, now, expires_at), secret


def list_tokens(
    *, session: Session, principal: Principal, request: PageRequest, user_id: int | None = None
) -> Page[ApiToken]:
    # The same scope as _can_manage_user: whoever may create or revoke a token can list it.
    stmt = select(ApiToken).join(User, User.id == ApiToken.user_id)
    if principal.role is Role.TENANT_ADMIN:
        stmt = stmt.where(User.org_id == principal.org_id)
    elif principal.role is Role.PROVIDER_OPERATOR:
        stmt = stmt.where(User.provider_id == principal.provider_id)
    elif not principal.is_regulator:
        stmt = stmt.where(ApiToken.user_id == principal.user_id)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    sortable = {"id": ApiToken.id, "created_at": ApiToken.created_at, "name": ApiToken.name}
    return page(session, stmt, request, sortable=sortable)


def revoke_token(*, session: Session, principal: Principal, token_id: int, now: datetime) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or not _can_manage_user(principal, token.user):
        raise NotFound("not-found", what="token", id=token_id)
    if token.revoked_at is None:
        token.revoked_at = now
    session.flush()
    return token


def authenticate(*, session: Session, secret: str | None, now: datetime) -> Principal:
    """The principal behind a bearer token; any failure is the same 401 so tokens cannot be probed."""
    if not secret:
        raise Unauthorized("auth.missing")
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    principal = _principal_of(token, now)
    act_as(session, user_actor(principal.user_id))  # the audit trail names the caller from here on
    return principal


@cache
def _tokens_by_hash(dialect: str) -> Select[tuple[ApiToken]]:
    """Tokens (with their users) whose hashes are bound as `hashes`: built once, run on every batch."""
    return (
        select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(among_bound(dialect, ApiToken.token_hash, "hashes"))
    )


def authenticate_many(
    *, session: Session, presented: Sequence[str | None], now: datetime
) -> list[Principal | Unauthorized]:
    """`authenticate` for many requests at once (one query): each gets its principal or its 401."""
    hashes = list({hash_token(secret) for secret in presented if secret})
    found = session.scalars(_tokens_by_hash(dialect_of(session)), {"hashes": hashes})
    tokens = {token.token_hash: token for token in found}
    results: list[Principal | Unauthorized] = []
    for secret in presented:
        try:
            if not secret:
                raise Unauthorized("auth.missing")
            results.append(_principal_of(tokens.get(hash_token(secret)), now))
        except Unauthorized as exc:
            results.append(exc)
    return results


def _principal_of(token: ApiToken | None, now: datetime) -> Principal:
    if (
        token is None
        or token.revoked_at is not None
        or (token.expires_at is not None and token.expires_at <= now)
        or token.user.retired_at is not None
    ):
        raise Unauthorized("auth.invalid")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    user = token.user
    return Principal(
        user_id=user.id,
        name=user.name,
        role=user.role,
        org_id=user.org_id,
        provider_id=user.provider_id,
        token_id=token.id,
    )


def ensure_regulator_token(*, session: Session, secret: str, user_name: str, now: datetime) -> User:
    """Make `secret` a valid regulator token (idempotent): the bootstrap for automation and the demo."""
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        user = User(name=user_name, role=Role.REGULATOR, display_name="Regulator")
        session.add(user)
        session.flush()
    elif user.role is not Role.REGULATOR or user.retired_at is not None:
        raise Conflict("user.bootstrap-conflict", name=user_name)
    ensure_token(session=session, user=user, secret=secret, now=now)
    return user


def ensure_token(*, session: Session, user: User, secret: str, now: datetime) -> None:
    """Make `secret` a valid token of `user` (idempotent): bootstrap and demo logins."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    if token is None:
        _insert_token(session, user, "bootstrap", secret, now, None)
    elif token.user_id != user.id:
        raise Conflict("user.bootstrap-conflict", name=user.name)
    elif token.revoked_at is not None:
        token.revoked_at = None  # the operator set this secret on purpose; honour it again
    session.flush()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _apply(obj: Any, changes: dict[str, Any]) -> None:
    for field, value in changes.items():
        setattr(obj, field, value)
