"""POST /api/v1/jobs without FastAPI's routing and dependency solving, for the well-formed request.

Measured in process (docs/benchmarks.md): of the API's CPU per submission, FastAPI's router, its
dependency solving and its body handling take about two thirds; the submission's own work (read the
body, validate it, fingerprint it, hand it to the intake) the rest. Job submission is the one route
called at thousands a second, so it is served here, as pure ASGI, inside the app's limits and headers
(the body limit, the rate limit and the security headers wrap this as they wrap the router).

Only the common case is taken: a JSON body that validates as a `JobCreate`, a bearer token and a valid
Idempotency-Key (or none). Anything else falls through, body and all, to the FastAPI route
(`jobs.api.submit_job`), which gives the same answers it always gave (422, 401, …) and is what the
OpenAPI document describes. Errors of the submission itself (a refusal, a database away) are answered
by the app's own exception handlers, as the route's would be.
"""

from __future__ import annotations

import inspect
from datetime import datetime

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from suanwang.api.deps import bearer_token, get_now
from suanwang.api.idempotency import idempotency_of
from suanwang.api.limits import app_path
from suanwang.errors import DomainError
from suanwang.jobs.schemas import JobCreate

JSON_TYPES = ("application/json",)


class SubmitFastPath:
    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or app_path(scope) != self.path:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        replay = _replaying(chunks, receive)
        request = Request(scope, replay)
        try:
            response = await self._submit(scope, request, chunks, receive)
        except ClientDisconnect:  # gone before its body arrived: nothing was submitted, nobody to answer
            return
        except Exception as exc:
            response = await _answer(scope, request, exc)
        if response is None:  # not the common case: the FastAPI route answers it
            await self.app(scope, replay, send)
            return
        await response(scope, replay, send)

    async def _submit(
        self, scope: Scope, request: Request, chunks: list[bytes], receive: Receive
    ) -> Response | None:
        body = await _read(receive, chunks)
        secret = bearer_token(request)
        content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if secret is None or content_type not in JSON_TYPES:
            return None
        try:
            data = JobCreate.model_validate_json(body)
            idem = idempotency_of(request, body)
        except (ValidationError, DomainError):
            return None
        now = await _now(scope)
        intake = scope["app"].state.intake
        response: Response = await intake.submit(secret=secret, idem=idem, data=data, now=now)
        return response


async def _read(receive: Receive, chunks: list[bytes]) -> bytes:
    """The whole body, kept in `chunks` for the FastAPI route should the request fall through."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(chunks: list[bytes], receive: Receive) -> Receive:
    """A receive that gives the body read so far once, then asks the client's connection."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()

    return replay


async def _now(scope: Scope) -> datetime:
    """The API's clock, as its routes get it (tests pin it by overriding `get_now`)."""
    clock = scope["app"].dependency_overrides.get(get_now, get_now)
    now = clock()
    return await now if inspect.isawaitable(now) else now  # type: ignore[no-any-return]


async def _answer(scope: Scope, request: Request, exc: Exception) -> Response:
    """The app's own answer to an error (its exception handlers, most specific first)."""
    handlers = scope["app"].exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            response: Response = await handler(request, exc)
            return response
    raise exc
