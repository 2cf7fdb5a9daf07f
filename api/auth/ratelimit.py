"""Failed sign-ins counted per key (a user name, a client address) in a sliding window, kept in the
store so that every API process on it counts the same failures."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from beffroi.clock import utcnow
from beffroi.identity import IdentityStore


class FailureLimiter:
    """At most `limit` failures per key within `window_s`; `retry_after` says how long a key waits.
    `scope` prefixes the keys (a user name and an address may be spelt alike)."""

    def __init__(
        self,
        store: IdentityStore,
        scope: str,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window_s)
        self._store = store
        self._scope = scope
        self._clock = clock

    def _key(self, key: str) -> str:
        return f"{self._scope}:{key}"

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again (0: it may now)."""
        now = self._clock()
        times = self._store.sign_in_failures(self._key(key), since=now - self.window, limit=self.limit)
        if len(times) < self.limit:
            return 0
        return max(1, math.ceil((times[-1] + self.window - now).total_seconds()))

    def fail(self, key: str) -> None:
        now = self._clock()
        self._store.add_sign_in_failure([self._key(key)], at=now, forget_before=now - self.window)

    def reset(self, key: str) -> None:
        self._store.clear_sign_in_failures(self._key(key))
