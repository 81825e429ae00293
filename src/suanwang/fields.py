"""Field types every API shape shares: strict bodies, names, codes and aware UTC times."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

# Ids are INTEGER columns: a larger number is bad input, not a database error (or a crash on SQLite).
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Strict(BaseModel):
    """A request body: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Patch(Strict):
    """A partial update: a field left out keeps its value; null clears only the fields in `nullable`."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise PydanticCustomError("not_null", "{field} cannot be null", {"field": info.field_name})
        return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    """NUL and other control characters are never part of a name (and PostgreSQL refuses NUL)."""
    if _CONTROL.search(value):
        raise PydanticCustomError("control_character", "control characters are not allowed")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_control_characters),
]
# For columns of 100 characters (affiliation group, locality name).
ShortName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_characters),
]
# Ids given by other systems (CloudEvent ids and sources, Slurm job ids): kept exactly as sent.
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_control_characters)
]
Login = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
Division = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
Email = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=200),
    AfterValidator(_no_control_characters),
]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# Any zone in, UTC stored and shown: a naive time is refused (pydantic's timezone_aware error).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
