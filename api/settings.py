"""The API component's section of the settings tree (`api`), and what the API reads of the tree."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import Field

from api.auth.settings import AuthSettings
from api.escalation import EscalationSettings
from beffroi.settings import PlatformSettings, Section


class ApiSettings(Section):
    host: str = Field(default="127.0.0.1", description="listen address: localhost unless set otherwise")
    port: int = Field(default=8000, ge=1, le=65535)
    list_cache_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="how long an alert list may be served again; 0: never (see api/page_cache.py)",
    )
    procedures: Path | None = Field(
        default=None, description="the standard operating procedures (YAML, see api/procedures.py)"
    )
    escalation: EscalationSettings = EscalationSettings()
    auth: AuthSettings = AuthSettings()


class ApiPlatformSettings(PlatformSettings, Protocol):
    """The settings tree as the API reads it: the platform's sections and its own."""

    @property
    def api(self) -> ApiSettings: ...
