"""What every rule is: a pure function from a batch of readings to the alerts they raise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from beffroi.events import Alert, Reading


class Rule(Protocol):
    """A stateless rule. Alert ids derive from the rule name and the reading's message id, so
    evaluating a redelivered reading again yields the same alert, never a second one."""

    name: str

    def evaluate(self, readings: Sequence[Reading]) -> list[Alert]: ...
