"""A job's page (state, history, logs, cancel) and the submit form with its live quote."""

from __future__ import annotations

import hashlib
import json
import shlex
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from anyio import from_thread
from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from suanwang.api.idempotency import IdempotencyKey
from suanwang.api.problems import field_error
from suanwang.catalog import catalog
from suanwang.errors import DomainError
from suanwang.i18n import t
from suanwang.jobs import api as jobs_api
from suanwang.jobs.intake import SubmitIntake
from suanwang.jobs.schemas import JobCreate, JobSpec
from suanwang.scheduler.types import Classification
from suanwang.units import parse_yuan
from suanwang.web import auth
from suanwang.web.auth import PageCtx, PageDep
from suanwang.web.render import page
from suanwang.web.tables import api_ctx

router = APIRouter(include_in_schema=False)
FINAL_STATES = {"succeeded", "failed", "cancelled", "rejected"}


@dataclass
class JobForm:
    """The submit form's fields, as typed (validated into a job spec by `spec`)."""

    csrf: str = ""
    nonce: str = ""
    name: str = ""
    command: str = ""
    cards: str = "1"
    minutes: str = "60"
    accelerator: str = ""
    max_price: str = ""
    classification: str = "public"
    preemptible: str = ""

    @classmethod
    def read(
        cls,
        csrf: Annotated[str, Form(max_length=100)] = "",
        nonce: Annotated[str, Form(max_length=64)] = "",
        name: Annotated[str, Form(max_length=200)] = "",
        command: Annotated[str, Form(max_length=20_000)] = "",
        cards: Annotated[str, Form(max_length=10)] = "",
        minutes: Annotated[str, Form(max_length=10)] = "",
        accelerator: Annotated[str, Form(max_length=32)] = "",
        max_price: Annotated[str, Form(max_length=20)] = "",
        classification: Annotated[str, Form(max_length=20)] = "public",
        preemptible: Annotated[str, Form(max_length=5)] = "",
    ) -> JobForm:
        return cls(
            csrf, nonce, name, command, cards, minutes, accelerator, max_price, classification, preemptible
        )

    def spec(self, lang: str) -> tuple[dict[str, Any] | None, list[str]]:
        """The fields as a job spec body, or why they are not one (in the reader's language)."""
        errors: list[str] = []
        body: dict[str, Any] = {
            "classification": self.classification,
            "preemptible": self.preemptible == "on",
        }
        try:
            body["command"] = shlex.split(self.command)
        except ValueError as exc:
            errors.append(t("web.submit.bad-command", lang, error=str(exc)))
        if not errors and not body["command"]:
            errors.append(t("web.submit.no-command", lang))
        if self.name.strip():
            body["name"] = self.name.strip()
        for field, key, scale in (("cards", "cards", 1), ("minutes", "duration_estimate_s", 60)):
            raw = getattr(self, field).strip()
            if raw and not raw.isdigit():
                errors.append(
                    t("web.submit.not-a-number", lang, field=t("web.submit." + field, lang), value=raw)
                )
            elif raw:
                body[key] = int(raw) * scale
        if self.accelerator.strip():
            body["accelerators"] = [self.accelerator.strip()]
        if self.max_price.strip():
            fen = parse_yuan(self.max_price.strip())
            if fen is None or fen <= 0:
                errors.append(t("web.submit.bad-price", lang, value=self.max_price))
            else:
                body["max_price_fen_per_card_hour"] = fen
        if errors:
            return None, errors
        try:
            JobSpec.model_validate(body)
        except ValidationError as exc:
            return None, [field_error(e, lang)["message"] for e in exc.errors()]
        return body, []


FormDep = Annotated[JobForm, Depends(JobForm.read)]


def _form(ctx: PageCtx, form: JobForm, errors: list[str], status: int = 200) -> Response:
    if not ctx.principal.is_tenant:
        return page(ctx, "message.html", status=403, message=t("web.submit.tenants-only", ctx.lang))
    return page(
        ctx,
        "job_new.html",
        status=status,
        form=form,
        errors=errors,
        nonce=form.nonce or uuid.uuid4().hex,
        accelerators=catalog.models(),
        classifications=[c.value for c in Classification],
    )


@router.get("/jobs/new", response_class=HTMLResponse)
def new_job(ctx: PageDep) -> Response:
    return _form(ctx, JobForm(), [])


@router.post("/jobs/quote", response_class=HTMLResponse)
def quote(ctx: PageDep, form: FormDep) -> Response:
    """The ranked pools for what the form asks now, as a fragment the form shows (nothing is stored)."""
    auth.check_csrf(ctx, form.csrf)
    body, errors = form.spec(ctx.lang)
    result = None
    if body is not None:
        try:
            settings = ctx.request.app.state.settings
            result = jobs_api.quote_job(JobSpec.model_validate(body), api_ctx(ctx), settings, ctx.lang)
        except DomainError as exc:
            errors = [exc.message(ctx.lang)]
    return page(ctx, "quote_fragment.html", quote=result, errors=errors)


@router.post("/jobs/new")
def submit(ctx: PageDep, form: FormDep) -> Response:
    """Submit through the same intake as the API; the form's nonce is the idempotency key, so a
    resubmitted form (back button, double click) does not make a second job."""
    auth.check_csrf(ctx, form.csrf)
    body, errors = form.spec(ctx.lang)
    if body is None:
        return _form(ctx, form, errors, status=422)
    intake: SubmitIntake = ctx.request.app.state.intake
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    idem = IdempotencyKey(key="web-" + (form.nonce or uuid.uuid4().hex), fingerprint=fingerprint)
    secret = ctx.request.cookies.get(auth.SESSION_COOKIE)
    data = JobCreate.model_validate(body)
    try:
        response = from_thread.run(partial(intake.submit, secret=secret, idem=idem, data=data, now=ctx.now))
    except DomainError as exc:
        return _form(ctx, form, [exc.message(ctx.lang)], status=exc.status)
    job = json.loads(bytes(response.body))
    return RedirectResponse(f"{auth.prefix_of(ctx.request)}/jobs/{job['id']}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(ctx: PageDep, job_id: int) -> Response:
    api = api_ctx(ctx)
    job = jobs_api.get_job(job_id, api, ctx.lang)
    events = jobs_api.job_events(job_id, api, ctx.lang)
    settings = ctx.request.app.state.settings
    logs = jobs_api.job_logs(job_id, ctx.request, api, settings, tail_bytes=64 * 1024)
    return page(
        ctx,
        "job.html",
        job=job,
        events=events,
        logs=bytes(logs.body).decode("utf-8", "replace"),
        final=job.state in FINAL_STATES,
    )


@router.post("/jobs/{job_id}/cancel")
def cancel(ctx: PageDep, job_id: int, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    auth.check_csrf(ctx, csrf)
    jobs_api.cancel_job(job_id, api_ctx(ctx), ctx.lang)
    return RedirectResponse(f"{auth.prefix_of(ctx.request)}/jobs/{job_id}", status_code=303)
