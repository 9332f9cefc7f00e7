"""Configuration files: YAML with line numbers, ``${env:VAR}`` expansion, and typed readers.

Every error names the file, the line and the dotted key at fault, so a user can go
straight to it::

    config.yaml:12: exporters.otlp/jaeger.endpoint: port 99999 is not a port (1-65535)
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from collector.errors import ConfigError

__all__ = ["ConfigError", "Document", "Section", "load_yaml_file", "parse_yaml"]

Path_ = tuple[str | int, ...]

_ENV_REF = re.compile(r"\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_REQUIRED = object()


@dataclass
class Document:
    """A parsed YAML file: plain data plus the line of every key and value."""

    data: Any
    source: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, path: Path_, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, source=self.source, line=self.line_of(path), key=dotted(path), hint=hint)

    def section(self, *path: str | int) -> Section:
        node = self.data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return Section(self, tuple(path), node)


def dotted(path: Path_) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand ``${env:VAR}`` and ``${env:VAR:-default}``; ``$$`` is a literal ``$``.

    An unset variable without a default expands to the empty string, as in the
    OpenTelemetry Collector.
    """
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        value = env.get(match.group(1))
        if value is None or (value == "" and match.group(2) is not None):
            return match.group(2) or ""
        return value

    return _ENV_REF.sub(replace, text)


def _convert(node: yaml.Node, path: Path_, doc: Document) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_convert(key_node, (*path, "<key>"), doc))
            if key in result:
                raise ConfigError("duplicate key", source=doc.source, line=key_node.start_mark.line + 1,
                                  key=dotted((*path, key)))
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, (*path, key), doc)
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc) for i, item in enumerate(node.value)]
    value = yaml.SafeLoader.construct_scalar(yaml.SafeLoader(""), node)
    if isinstance(value, str) and "$" in value:
        expanded = expand_env(value)
        if node.style is None and expanded != value:
            return _retyped(expanded)
        return expanded
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"invalid value {node.value!r}: {exc}", source=doc.source,
                          line=node.start_mark.line + 1, key=dotted(path)) from None


def _retyped(text: str) -> Any:
    """An unquoted ``${env:...}`` takes the YAML scalar type of what it expands to (ports, booleans);
    anything that is not a plain scalar stays the string it is."""
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    return value if isinstance(value, int | float | bool) or (value is None and text.strip()) else text


def parse_yaml(text: str, source: str = "<string>") -> Document:
    """Parse YAML text, keeping line numbers; raises ConfigError on syntax errors."""
    doc = Document(None, source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error: {problem}", source=source,
                          line=mark.line + 1 if mark else None) from None
    doc.data = {} if root is None else _convert(root, (), doc)
    return doc


def default_config_path() -> Path:
    """The default config shipped inside the package (a copy of config/collector.yaml)."""
    return Path(str(resources.files("collector") / "defaults" / "collector.yaml"))


def load_yaml_file(path: str | Path) -> Document:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=str(path)) from None
    return parse_yaml(text, str(path))


def parse_duration(value: Any) -> float:
    """Seconds from ``200ms``, ``5s``, ``1h30m`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 200ms, 5s or 1m")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (use e.g. 200ms, 5s, 1m, 1h30m)")
    return total


def parse_size(value: Any) -> int:
    """Bytes from ``20MiB``, ``512KiB``, ``1000000`` and the like."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B|B)?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ValueError(f"{value!r} is not a size (use e.g. 20MiB, 512KiB or a number of bytes)")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]


def parse_endpoint(value: Any) -> tuple[str, int]:
    """``host:port`` (an http(s):// prefix and a path are ignored) → (host, port)."""
    text = str(value).strip()
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0]
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not an endpoint (use host:port, e.g. 127.0.0.1:4317)")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a port (1-65535)")
    return host.strip("[]"), int(port_text)


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else ""


class Section:
    """Typed access to one mapping of a Document; records which keys were read.

    Call :meth:`finish` once all keys are read: any left over is an unknown key.
    """

    def __init__(self, doc: Document, path: Path_, data: Any):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise doc.error(path, f"expected a mapping, got {type(data).__name__}")
        self.doc, self.path, self.data = doc, path, data
        self._read: set[str] = set()

    def error(self, key: str | None, message: str, hint: str = "") -> ConfigError:
        return self.doc.error(self.path + ((key,) if key else ()), message, hint)

    def keys(self) -> list[str]:
        return list(self.data)

    def __iter__(self):
        return iter(list(self.data))

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = _REQUIRED) -> Any:
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _REQUIRED:
                raise self.error(None, f"missing required key {key!r}")
            return default
        return self.data[key]

    def _typed(self, key: str, default: Any, convert) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _REQUIRED:
            return value
        try:
            return convert(value)
        except (TypeError, ValueError) as exc:
            raise self.error(key, str(exc)) from None

    def str(self, key: str, default: Any = _REQUIRED, choices: Iterable[str] | None = None) -> Any:
        value = self._typed(key, default, lambda v: v if isinstance(v, str) else str(v))
        if choices is not None and value is not default and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}", suggest(value, choices))
        return value

    def int(self, key: str, default: Any = _REQUIRED, minimum: int | None = None) -> Any:
        def convert(v: Any) -> int:
            if isinstance(v, bool) or not str(v).lstrip("-").isdigit():
                raise ValueError(f"{v!r} is not an integer")
            if minimum is not None and int(v) < minimum:
                raise ValueError(f"must be at least {minimum}, got {v}")
            return int(v)

        return self._typed(key, default, convert)

    def float(self, key: str, default: Any = _REQUIRED) -> Any:
        def convert(v: Any) -> float:
            try:
                number = float(v) if not isinstance(v, bool) else None
            except (TypeError, ValueError):
                number = None
            if number is None or number != number:
                raise ValueError(f"{v!r} is not a number")
            return number

        return self._typed(key, default, convert)

    def bool(self, key: str, default: Any = _REQUIRED) -> Any:
        def convert(v: Any) -> bool:
            if isinstance(v, bool):
                return v
            if str(v).lower() in ("true", "false"):
                return str(v).lower() == "true"
            raise ValueError(f"{v!r} is not true or false")

        return self._typed(key, default, convert)

    def duration(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._typed(key, default, parse_duration)

    def size(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._typed(key, default, parse_size)

    def endpoint(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._typed(key, default, parse_endpoint)

    def str_list(self, key: str, default: Any = _REQUIRED) -> Any:
        def convert(v: Any) -> list[str]:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError("expected a list of strings")
            return v

        return self._typed(key, default, convert)

    def str_map(self, key: str) -> dict[str, str]:
        def convert(v: Any) -> dict[str, str]:
            if not isinstance(v, dict):
                raise ValueError("expected a mapping of names to values")
            return {str(k): "" if x is None else str(x) for k, x in v.items()}

        return self._typed(key, {}, convert)

    def section(self, key: str) -> Section:
        self._read.add(key)
        return Section(self.doc, (*self.path, key), self.data.get(key))

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self._read]
        if unknown:
            known = sorted(self._read)
            raise self.error(unknown[0], "unknown key",
                             suggest(unknown[0], known) or f"known keys here: {', '.join(known) or 'none'}")
