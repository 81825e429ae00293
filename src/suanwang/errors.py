"""Domain errors: each carries a message key and its parameters; the edge renders them in the user's language.

HTTP renders them as RFC 9457 problem+json, the CLI as one line with exit code 2.
"""

from __future__ import annotations

from typing import Any, ClassVar

from suanwang.i18n import t


class DomainError(Exception):
    status: ClassVar[int] = 400
    title_key: ClassVar[str] = "problem.bad-request"

    def __init__(self, code: str, /, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        params = dict(self.params)
        if isinstance(params.get("what"), str):
            params["what"] = t(f"what.{params['what']}", lang)
        return t(self.code, lang, **params)

    def title(self, lang: str) -> str:
        return t(self.title_key, lang)

    def extra(self, lang: str) -> dict[str, Any]:
        """More members of the problem body (RFC 9457 extension members), in `lang`; none by default."""
        return {}


class Invalid(DomainError):
    status = 422
    title_key = "problem.invalid"


class Unauthorized(DomainError):
    status = 401
    title_key = "problem.unauthorized"


class Forbidden(DomainError):
    status = 403
    title_key = "problem.forbidden"


class NotFound(DomainError):
    status = 404
    title_key = "problem.not-found"


class Conflict(DomainError):
    status = 409
    title_key = "problem.conflict"


class PayloadTooLarge(DomainError):
    status = 413
    title_key = "problem.too-large"


class UnsupportedMediaType(DomainError):
    status = 415
    title_key = "problem.unsupported-media-type"


class Unavailable(DomainError):
    status = 503
    title_key = "problem.unavailable"
