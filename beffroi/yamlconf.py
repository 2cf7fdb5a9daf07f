"""Load YAML into pydantic models with errors that name the file, the key and the line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    key: str
    line: int | None
    message: str


class ConfigError(ValueError):
    """A config or scenario file failed to parse or validate. `issues` lists every problem."""

    def __init__(self, path: Path | str, issues: list[ConfigIssue]) -> None:
        self.path = Path(path)
        self.issues = issues
        lines = [f"{self.path}:{i.line if i.line is not None else '?'}: {i.key}: {i.message}" for i in issues]
        super().__init__("\n".join(lines))


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    return _LinedDict(result, lines, node.start_mark.line + 1)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    items = [loader.construct_object(child, deep=True) for child in node.value]
    return _LinedList(items, [child.start_mark.line + 1 for child in node.value], node.start_mark.line + 1)


class _LinedDict(dict[Any, Any]):
    def __init__(self, data: dict[Any, Any], lines: dict[Any, int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


class _LinedList(list[Any]):
    def __init__(self, data: list[Any], lines: list[int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def line_of(doc: Any, loc: Loc) -> int | None:
    """The deepest line known for a pydantic error location inside a loaded document."""
    line: int | None = getattr(doc, "line", None)
    node = doc
    for part in loc:
        if isinstance(node, _LinedDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, _LinedList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            # pydantic inserts union tags and the like into locations; skip what the document lacks
            continue
    return line


def _key(loc: Loc) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "<root>"


def load_yaml(path: Path | str, text: str | None = None) -> Any:
    """Parse a YAML file, keeping line numbers; syntax errors raise ConfigError with the line."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(path, [ConfigIssue("<file>", None, f"cannot read: {exc.strerror}")]) from exc
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, [ConfigIssue("<yaml>", line, str(exc.problem or exc))]) from exc
    return doc if doc is not None else _LinedDict({}, {}, 1)


def validate_doc(model: type[M], doc: Any, path: Path | str) -> M:
    """Validate an already loaded document, mapping every pydantic error to its line."""
    try:
        return model.model_validate(_plain(doc), context={"source": str(path)})
    except ValidationError as exc:
        issues = [ConfigIssue(_key(err["loc"]), line_of(doc, err["loc"]), err["msg"]) for err in exc.errors()]
        raise ConfigError(path, issues) from exc


def load_model(model: type[M], path: Path | str, text: str | None = None) -> M:
    return validate_doc(model, load_yaml(path, text), path)
