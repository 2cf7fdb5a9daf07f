"""`Idempotency-Key` on actions: a retried request (same user, same key, same request) gets the first
answer again, replayed, and acts once. The same key with another request is a 422; while the first
is still being answered, a 409. Kept in this API process for `ttl_s`."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


class KeyReused(ValueError):
    """The key came with another request."""


class KeyInFlight(RuntimeError):
    """The first request with this key is still being answered."""


_IN_FLIGHT = Answer(0, b"")


class IdempotencyKeys:
    def __init__(
        self, ttl_s: float = 86_400.0, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_keys
        self._clock = clock
        self._answers: OrderedDict[tuple[str, str], tuple[str, float, Answer]] = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, user: str, key: str, fingerprint: str) -> Answer | None:
        """The stored answer to replay, or None: go on, then `finish` (or `abandon`)."""
        now = self._clock()
        with self._lock:
            found = self._answers.get((user, key))
            if found is not None and found[1] > now:
                seen, _, answer = found
                if seen != fingerprint:
                    raise KeyReused(f"Idempotency-Key {key!r} was used for another request")
                if answer is _IN_FLIGHT:
                    raise KeyInFlight(f"the request with Idempotency-Key {key!r} is still being answered")
                return answer
            self._answers[(user, key)] = (fingerprint, now + self.ttl_s, _IN_FLIGHT)
            while len(self._answers) > self._max:
                self._answers.popitem(last=False)
        return None

    def finish(self, user: str, key: str, fingerprint: str, answer: Answer) -> None:
        with self._lock:
            self._answers[(user, key)] = (fingerprint, self._clock() + self.ttl_s, answer)

    def abandon(self, user: str, key: str) -> None:
        """The request failed before acting (an error answer): the key may be used again."""
        with self._lock:
            self._answers.pop((user, key), None)
