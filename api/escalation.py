"""Escalation of alerts nobody acknowledged: its settings, and the `Escalator` the API runs.

The store does the work (`Store.escalate_due`: a conditional update per alert and level, with its
audit record, so that several API processes never escalate an alert twice); the escalator calls it
on a clock of its own (injected: tests pass a fake one) and announces each escalation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from beffroi.clock import utcnow
from beffroi.events import Severity
from beffroi.store import Escalation, Store, StoreError

log = logging.getLogger(__name__)


def _default_after() -> dict[Severity, float]:
    return {Severity.CRITICAL: 60.0, Severity.HIGH: 300.0, Severity.MEDIUM: 900.0, Severity.LOW: 1800.0}


class EscalationSettings(BaseModel):
    """An open alert still new (nobody acknowledged it) `after_s[severity]` seconds after it was raised
    or last escalated is escalated: its severity goes up one level (critical stays critical) and the
    site's supervisors are flagged; once per level. Severities not in `after_s` never are."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    after_s: dict[Severity, float] = Field(default_factory=_default_after)
    check_every_s: float = Field(default=5.0, gt=0)
    batch: int = Field(default=100, ge=1, le=10_000, description="escalations at most per check")


class Escalator:
    """Escalates the alerts due at `clock()` (`run_once`), and calls `on_escalated` with each."""

    def __init__(
        self,
        store: Store,
        settings: EscalationSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_escalated: Callable[[Escalation], None] = lambda e: None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.on_escalated = on_escalated

    def run_once(self) -> list[Escalation]:
        """Escalate what is due now; returns what this call escalated (none when disabled)."""
        if not self.settings.enabled:
            return []
        done = self.store.escalate_due(self.clock(), self.settings.after_s, limit=self.settings.batch)
        for escalation in done:
            log.info(
                "escalated alert %s of %s: %s -> %s",
                escalation.alert_id,
                escalation.site_id,
                escalation.from_severity.value,
                escalation.to_severity.value,
            )
            self.on_escalated(escalation)
        return done

    async def run_forever(self) -> None:
        """`run_once` every `check_every_s` (in a thread: the store blocks) until cancelled; a store
        error is logged and the next check tries again."""
        while True:
            check = asyncio.ensure_future(asyncio.to_thread(self.run_once))
            try:
                await asyncio.shield(check)
            except asyncio.CancelledError:
                # cancelling does not stop the thread: let its check end before the caller may close
                # the store (a late query would open a connection nobody closes)
                with suppress(Exception):
                    await check
                raise
            except StoreError as exc:
                log.warning("escalation: %s; trying again in %g s", exc, self.settings.check_every_s)
            except Exception:  # a bug must not end escalation for the rest of the run: log, go on
                log.exception("escalation failed; trying again in %g s", self.settings.check_every_s)
            await asyncio.sleep(self.settings.check_every_s)
