"""Standard operating procedures: for an alert of a rule (or, failing that, of a category), the
ordered steps an operator follows, some required. Read from a YAML file (settings.api.procedures),
validated like the venue and the settings: every error names the file, the key and the line.

    procedures:
      - id: panic
        title: Panic button pressed
        rules: [panic-button]
        steps:
          - {id: radio, text: Call the sector's steward on channel 3, required: true}
          - {id: cctv, text: Look at the zone's cameras}

Operators tick steps (each tick is an audit record: the audit log is the record of what was done);
resolving an alert whose required steps are not done is refused, naming them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from beffroi.events import Alert, AlertCategory
from beffroi.identity import AuditKind, IdentityStore
from beffroi.yamlconf import load_model

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    text: str = Field(min_length=1, max_length=500)
    required: bool = False


class Procedure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    title: str = Field(min_length=1, max_length=200)
    rules: list[str] = Field(default_factory=list, description="the rules whose alerts follow it")
    categories: list[AlertCategory] = Field(
        default_factory=list, description="or every alert of these categories (a rule's own wins)"
    )
    steps: list[Step] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _check(self) -> Procedure:
        if not self.rules and not self.categories:
            raise ValueError("a procedure applies to some rules or categories: name at least one")
        ids = [s.id for s in self.steps]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"step ids must be unique; twice: {', '.join(twice)}")
        return self


class Procedures(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    procedures: list[Procedure] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_procedure_each(self) -> Procedures:
        ids = [p.id for p in self.procedures]
        if len(set(ids)) != len(ids):
            raise ValueError("procedure ids must be unique")
        for what, keys in (
            ("rule", [r for p in self.procedures for r in p.rules]),
            ("category", [c.value for p in self.procedures for c in p.categories]),
        ):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if twice:
                raise ValueError(f"a {what} has one procedure; named by several: {', '.join(twice)}")
        return self

    def for_alert(self, alert: Alert) -> Procedure | None:
        """The rule's procedure, else its category's, else None."""
        for procedure in self.procedures:
            if alert.rule in procedure.rules:
                return procedure
        for procedure in self.procedures:
            if alert.category in procedure.categories:
                return procedure
        return None


def steps_done(identity: IdentityStore, alert_id: str) -> dict[str, tuple[str, datetime]]:
    """Step id -> (who, when) for the alert, from the audit log (the first tick of each step)."""
    records = identity.list_audit(kind=AuditKind.STEP_DONE, target=alert_id, limit=1000)
    return {r.detail: (r.actor, r.at) for r in reversed(records) if r.detail}


def required_undone(procedure: Procedure | None, identity: IdentityStore, alert_id: str) -> list[Step]:
    """The required steps of `procedure` not done yet for the alert, in order."""
    if procedure is None:
        return []
    done = steps_done(identity, alert_id)
    return [s for s in procedure.steps if s.required and s.id not in done]


def load_procedures(path: Path | str, text: str | None = None) -> Procedures:
    """Validate a procedures file (or `text` as that file); raises ConfigError naming file:line."""
    return load_model(Procedures, path, text)
