"""`beffroi validate FILE...`: check settings, venue and scenario files, naming file and line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from beffroi.venue import Venue
from beffroi.yamlconf import ConfigError, ConfigIssue, load_yaml, validate_doc
from tower.settings import load_settings


def _kind_of(doc: Any) -> str:
    if isinstance(doc, dict):
        if "kind" in doc and isinstance(doc["kind"], str):
            return doc["kind"]
        if "sites" in doc:
            return "venue"
        if "timeline" in doc or "incidents" in doc:
            return "scenario"
    return "settings"


def validate_file(path: str) -> str:
    """Validate one file; returns what it was recognised as, raises ConfigError on problems."""
    doc = load_yaml(path)
    kind = _kind_of(doc)
    if kind == "venue":
        validate_doc(Venue, doc, path)
    elif kind == "scenario":
        from simulators.scenario_file import load_scenario  # scenario model lives with the simulators

        load_scenario(path)
    elif kind == "settings":
        load_settings(path)
    else:
        raise ConfigError(path, [ConfigIssue("kind", getattr(doc, "line", 1), f"unknown file kind {kind!r}")])
    return kind


def _handle(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            kind = validate_file(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            failed += 1
        else:
            print(f"{path}: ok ({kind})")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate settings, venue and scenario files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=_handle)
