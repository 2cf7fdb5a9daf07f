"""Password hashing with argon2id (argon2-cffi). Unknown users cost as much as known ones."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from api.auth.settings import PasswordHashSettings

MAX_PASSWORD_CHARS = 1024


class Passwords:
    def __init__(self, settings: PasswordHashSettings | None = None) -> None:
        s = settings or PasswordHashSettings()
        self._hasher = PasswordHasher(
            time_cost=s.time_cost, memory_cost=s.memory_kib, parallelism=s.parallelism
        )
        self._dummy = self._hasher.hash("not a password of anyone")

    def hash(self, password: str) -> str:
        if not password or len(password) > MAX_PASSWORD_CHARS:
            raise ValueError(f"a password has 1 to {MAX_PASSWORD_CHARS} characters")
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; a None hash (unknown user) is checked against a dummy one,
        so that the answer takes as long either way."""
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        try:
            ok = self._hasher.verify(password_hash or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None
