"""`Idempotency-Key` on actions: a retried request (same user, same key, same request) gets the first
answer again, replayed, and acts once. The same key with another request is a 422; while the first
is still being answered, a 409. Claims and answers are kept in the store for `ttl_s`, so that every
API process on the store sees them (a retry may reach another process behind a load balancer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from beffroi.clock import utcnow
from beffroi.identity import IdentityStore


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


class KeyReused(ValueError):
    """The key came with another request."""


class KeyInFlight(RuntimeError):
    """The first request with this key is still being answered."""


class IdempotencyKeys:
    def __init__(
        self, store: IdentityStore, ttl_s: float = 86_400.0, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.ttl = timedelta(seconds=ttl_s)
        self._store = store
        self._clock = clock

    def begin(self, user: str, key: str, fingerprint: str) -> Answer | None:
        """The stored answer to replay, or None: go on, then `finish` (or `abandon`)."""
        now = self._clock()
        found = self._store.claim_request_key(user, key, fingerprint, now=now, expires_at=now + self.ttl)
        if found is None:
            return None
        if found.fingerprint != fingerprint:
            raise KeyReused(f"Idempotency-Key {key!r} was used for another request")
        if found.status is None or found.body is None:
            raise KeyInFlight(f"the request with Idempotency-Key {key!r} is still being answered")
        return Answer(found.status, found.body)

    def finish(self, user: str, key: str, fingerprint: str, answer: Answer) -> None:
        self._store.finish_request_key(
            user, key, status=answer.status, body=answer.body, expires_at=self._clock() + self.ttl
        )

    def abandon(self, user: str, key: str) -> None:
        """The request failed before acting (an error answer): the key may be used again."""
        self._store.release_request_key(user, key)
