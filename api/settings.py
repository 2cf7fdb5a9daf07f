"""The API component's section of the settings tree (`api`)."""

from __future__ import annotations

from pydantic import Field

from beffroi.settings import Section


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
