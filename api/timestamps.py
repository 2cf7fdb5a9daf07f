"""Instants the API takes: an ISO 8601 date-time with its zone, as the OpenAPI document says
(`format: date-time`). Pydantic alone also reads a number, or a string of one (`until=0.5`), as
seconds since 1970; the document does not allow it, so neither does the API (a 422)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_only(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("an ISO 8601 date-time with its zone, not a number")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_only)]
