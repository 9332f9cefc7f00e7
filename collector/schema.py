"""Typed component configs: a dataclass holds a component's keys and defaults once; ``read`` fills it.

A config class is a plain dataclass whose field types say how each key is read::

    @dataclass(frozen=True)
    class BatchConfig:
        send_batch_size: Annotated[int, AtLeast(1)] = 8192
        timeout: Duration = 0.2
        metadata_keys: tuple[str, ...] = ()

``read(BatchConfig, section, context)`` converts every key, refuses unknown ones with a "did you
mean" hint, then calls the class's ``check()`` (when it has one) for rules across keys. Errors keep
the ``file:line: key: problem`` form of :mod:`collector.config`; ``check`` raises :class:`Invalid`
with the key path at fault.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``Literal[...]`` (choices),
``Duration``, ``Size``, ``Endpoint``, ``ExistingFile``, ``tuple[str, ...]``, ``tuple[ExistingFile, ...]``,
``dict[str, str]``, ``dict[str, tuple[str, ...]]``, a nested config dataclass (a sub-mapping), ``tuple[Config, ...]``
(a list of mappings), ``X | None`` (absent means None) and ``Annotated[T, Parse(fn)]`` for a value
that a function turns into ``T`` (raising ValueError or Invalid).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from collector.config import Path_, Section

T = TypeVar("T")


@dataclass(frozen=True)
class AtLeast:
    """``Annotated[int, AtLeast(1)]``: an integer no smaller than ``minimum``."""

    minimum: int


@dataclass(frozen=True)
class MinLength:
    """``Annotated[str, MinLength(16)]``: a string (a token) of at least ``length`` characters."""

    length: int
    message: str = ""


@dataclass(frozen=True)
class Parse:
    """``Annotated[T, Parse(fn)]``: the raw YAML value through ``fn`` (ValueError or Invalid on bad input)."""

    function: Callable[[Any], Any]


@dataclass(frozen=True)
class _Kind:
    name: str


Duration = Annotated[float, _Kind("duration")]  # seconds, from 200ms / 5s / 1h30m
Size = Annotated[int, _Kind("size")]  # bytes, from 20MiB / 512KiB
Endpoint = Annotated[tuple[str, int], _Kind("endpoint")]  # host:port
ExistingFile = Annotated[Path, _Kind("existing_file")]  # relative to the config file's folder; must exist


class Invalid(ValueError):
    """A rule of a config class is broken; ``path`` is the key path under the component (may be empty)."""

    def __init__(self, path: str | Path_, message: str, hint: str = ""):
        super().__init__(message)
        self.path: Path_ = (path,) if isinstance(path, str) else tuple(path)
        self.message = message
        self.hint = hint


class FileResolver(typing.Protocol):
    def resolve(self, path: str) -> Path: ...


def read(cls: type[T], section: Section, context: FileResolver) -> T:
    """Read ``section`` as ``cls`` (a dataclass); raises ConfigError at the file, line and key at fault."""
    values: dict[str, Any] = {}
    for field, hint in _fields(cls):
        key = field.name
        # ``grpc:`` with no value enables a nested block with its defaults, as in the OpenTelemetry Collector
        empty_block = section.has(key) and section.data[key] is None and dataclasses.is_dataclass(_optional(hint))
        if not section.has(key) or (section.data[key] is None and not empty_block):
            section.raw(key, None)  # marks the key as known
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                if _optional(hint) is None:
                    raise section.error(None, f"missing required key {key!r}")
                values[field.name] = None
            continue
        values[field.name] = read(_optional(hint), section.section(key), context) if empty_block \
            else _value(hint, section, key, context)
    section.finish()
    config = cls(**values)
    check = getattr(config, "check", None)
    if check is not None:
        try:
            check()
        except Invalid as exc:
            raise section.doc.error((*section.path, *exc.path), exc.message, exc.hint) from None
    return config


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.init)


def _optional(hint: Any) -> Any:
    """``X`` of ``X | None``, else None."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(get_args(hint)) == 2:
            return args[0]
    return None


def _value(hint: Any, section: Section, key: str, context: FileResolver) -> Any:
    inner = _optional(hint)
    if inner is not None:
        hint = inner
    extras: tuple = ()
    if get_origin(hint) is Annotated:
        hint, *rest = get_args(hint)
        extras = tuple(rest)
    for extra in extras:
        if isinstance(extra, Parse):
            raw = section.raw(key)
            try:
                return extra.function(raw)
            except Invalid as exc:
                raise section.doc.error((*section.path, key, *exc.path), exc.message, exc.hint) from None
            except (TypeError, ValueError) as exc:
                raise section.error(key, str(exc)) from None
        if isinstance(extra, _Kind):
            return _kind(extra.name, section, key, context)
    minimum = next((e.minimum for e in extras if isinstance(e, AtLeast)), None)
    if dataclasses.is_dataclass(hint):
        return read(hint, section.section(key), context)
    origin = get_origin(hint)
    if origin is Literal:
        return section.str(key, choices=[str(c) for c in get_args(hint)])
    if hint is bool:
        return section.bool(key)
    if hint is int:
        return section.int(key, minimum=minimum)
    if hint is float:
        return section.float(key)
    if hint is str:
        value = section.str(key)
        for extra in extras:
            if isinstance(extra, MinLength) and len(value) < extra.length:
                raise section.error(key, extra.message or f"at least {extra.length} characters")
        return value
    if origin is tuple:
        item = get_args(hint)[0]
        if dataclasses.is_dataclass(item):
            return _records(item, section, key, context)
        if item == ExistingFile:
            return tuple(_existing(context, section, (key, index), path)
                         for index, path in enumerate(section.str_list(key)))
        return tuple(section.str_list(key))
    if origin is dict:
        item = get_args(hint)[1]
        if item is str:
            return section.str_map(key)
        mapping = section.section(key)
        result = {name: tuple(mapping.str_list(name)) for name in mapping}
        mapping.finish()
        return result
    raise TypeError(f"{hint!r} is not a config field type")  # a programming error, not a config one


def _records(cls: type, section: Section, key: str, context: FileResolver) -> tuple:
    entries = section.raw(key)
    if not isinstance(entries, list):
        raise section.error(key, "expected a list of mappings")
    return tuple(read(cls, Section(section.doc, (*section.path, key, index), entry), context)
                 for index, entry in enumerate(entries))


def _kind(name: str, section: Section, key: str, context: FileResolver) -> Any:
    if name == "duration":
        return section.duration(key)
    if name == "size":
        return section.size(key)
    if name == "endpoint":
        return section.endpoint(key)
    return _existing(context, section, (key,), section.str(key))


def _existing(context: FileResolver, section: Section, path: Path_, value: str) -> Path:
    resolved = context.resolve(value)
    if not resolved.is_file():
        raise section.doc.error((*section.path, *path), f"file not found: {resolved}")
    return resolved


def key_paths(cls: type) -> list[str]:
    """Every key a config class reads, dotted (``protocols.grpc.endpoint``); lists and maps are leaves."""
    paths = []
    for field, hint in _fields(cls):
        inner = _optional(hint) or hint
        if dataclasses.is_dataclass(inner):
            paths += [f"{field.name}.{sub}" for sub in key_paths(inner)]
        else:
            paths.append(field.name)
    return paths
