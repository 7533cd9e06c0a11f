"""Config dataclasses as command-line options: each field's metadata is its help, so an option is written once."""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

# Modelled on TRL's HfArgumentParser (one dataclass per stage whose fields are the flags), without its dependency.
# Every option is added with default=SUPPRESS, so the namespace holds only what was typed: the defaults live in the
# dataclass alone, and a caller can tell a flag that was given from one left at its default (data-gen's per-tool
# values depend on that).


def option(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None, metavar: str | None = None,
           choices: Sequence[Any] | None = None) -> Any:
    """A dataclass field that is also a command-line option.

    `help` describes it (the default is appended by `add_options`); `flag` replaces the derived `--field-name`
    (for a bool, a flag spelled `--no-x` only turns the field off; any other gives `--x` and `--no-x`);
    `choices` lists the allowed values (a `Literal[...]` type gives them too). Without a default the option is
    required.
    """
    if flag is not None and not flag.startswith("--"):
        raise ValueError(f"flag {flag!r} must start with '--'")
    meta = {"help": help, "flag": flag, "metavar": metavar, "choices": tuple(choices) if choices else None}
    return dataclasses.field(default=default, metadata=meta)


def comma_list(text: str) -> tuple[str, ...]:
    """`"a, b,c"` -> `("a", "b", "c")`: a tuple-of-strings option is written comma-separated; blanks are dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def flag_of(cls: type, name: str) -> str:
    """The command-line spelling of field `name` of the dataclass `cls`."""
    meta = _field(cls, name).metadata
    return meta.get("flag") or "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                only: Collection[str] | None = None, exclude: Collection[str] = (), group: str | None = None,
                base: Any = None) -> None:
    """Add one option per field of the dataclass `cls` (all of them, or `only` those, less `exclude`).

    `group` puts them under a section of --help with that title, described by the docstring's first line.
    `base` is an instance of `cls` whose values are the defaults shown (a command that starts from other
    defaults); pass the same `base` to `from_args`.
    A field without help text is an error: every option must say what it does.
    """
    doc = (cls.__doc__ or "").strip().splitlines()
    target = parser.add_argument_group(group, doc[0] if doc else None) if group else parser
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or f.name in exclude:
            continue
        if "help" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} has no help text: declare it with toolcall.options.option(...) "
                            "or exclude it")
        kind = _unwrap_optional(hints[f.name])
        default = getattr(base, f.name) if base is not None else _default(f)
        flag = flag_of(cls, f.name)
        kwargs: dict[str, Any] = {"dest": _dest(cls, f.name), "default": argparse.SUPPRESS}
        if kind is bool:
            if flag.startswith("--no-"):
                kwargs["action"] = "store_false"
                shown = None  # the flag says what it does; the default is its absence
            else:
                kwargs["action"] = argparse.BooleanOptionalAction
                shown = None if default is dataclasses.MISSING else ("on" if default else "off")
        else:
            choices = f.metadata.get("choices") or _literal_choices(kind)
            kwargs["type"] = _converter(kind, f"{cls.__name__}.{f.name}")
            if choices:
                kwargs["choices"] = choices
            kwargs["metavar"] = f.metadata.get("metavar") or (None if choices else flag[2:].upper().replace("-", "_"))
            kwargs["required"] = default is dataclasses.MISSING
            shown = _show(default)
        text = f.metadata["help"] + (f" (default: {shown})" if shown is not None else "")
        kwargs["help"] = text.replace("%", "%%")  # argparse %-formats help strings
        target.add_argument(flag, **kwargs)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` that were set on the command line, by field name (the rest are absent)."""
    values = vars(args)
    return {f.name: values[_dest(cls, f.name)] for f in dataclasses.fields(cls) if _dest(cls, f.name) in values}


def from_args(cls: type, args: argparse.Namespace, *, base: Any = None, **overrides: Any) -> Any:
    """The dataclass `cls` built from its options in `args`: defaults (or `base`'s values), then given flags, then
    `overrides`. The dataclass validates itself, so a bad value raises its ConfigError here."""
    values = {**given(args, cls), **overrides}
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def at_least(config: Any, **bounds: float) -> None:
    """Raise ConfigError unless each named field of `config` is >= its bound (for a dataclass's __post_init__)."""
    for name, low in bounds.items():
        value = getattr(config, name)
        if value is not None and not value >= low:  # NaN is not >= anything, and passed `value < low`
            raise ConfigError(f"{name} ({flag_of(type(config), name)}) must be >= {low}, got {value}")


def within(config: Any, **bounds: tuple[float, float]) -> None:
    """Raise ConfigError unless each named field of `config` lies in its closed range [low, high] (None passes)."""
    for name, (low, high) in bounds.items():
        value = getattr(config, name)
        if value is not None and not low <= value <= high:  # NaN fails both comparisons
            raise ConfigError(f"{name} ({flag_of(type(config), name)}) must be in [{low:g}, {high:g}], got {value}")


def check_types(config: Any) -> None:
    """Raise ConfigError unless each field of the dataclass `config` holds a value of its declared type (for
    __post_init__): from Python, `max_calls=None` failed later inside the loop and `tools_enabled="no"` counted as
    true. An int is no bool, a float may be an int, a Path may be given as a str."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        kind = hints.get(f.name, Any)
        optional = kind is not _unwrap_optional(kind) or kind is type(None)
        kind = _unwrap_optional(kind)
        if value is None and optional:
            continue
        if not _holds(value, kind):
            raise ConfigError(f"{f.name} ({flag_of(type(config), f.name)}) must be {_kind_words(kind)}, got {value!r:.60}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """A config class's resolved field types, read once (LoopConfig is made per server request)."""
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = typing.get_type_hints(cls)
    return found


def _holds(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind is Path:
        return isinstance(value, (str, Path))
    if typing.get_origin(kind) is Literal:
        return value in typing.get_args(kind)
    if typing.get_origin(kind) is tuple and typing.get_args(kind) == (str, ...):
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    return True  # a type no option uses: not checked here


def _kind_words(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(kind))
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text", Path: "a path"}
    return names.get(kind, "a tuple of strings" if typing.get_origin(kind) is tuple else str(kind))


# --- internals ---------------------------------------------------------------------------------------------------
def _dest(cls: type, name: str) -> str:
    # Namespaced by class, so two configs with a field of the same name never share a slot.
    return f"{cls.__qualname__}.{name}"


def _field(cls: type, name: str) -> dataclasses.Field[Any]:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _unwrap_optional(kind: Any) -> Any:
    """`X | None` and `Optional[X]` -> X (None is never typed on a command line; it is only a default)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def _literal_choices(kind: Any) -> tuple[Any, ...] | None:
    return tuple(typing.get_args(kind)) if typing.get_origin(kind) is Literal else None


def _converter(kind: Any, where: str) -> Callable[[str], Any]:
    if kind in (int, float, str, Path):
        return kind
    if typing.get_origin(kind) is Literal:
        values = typing.get_args(kind)
        return type(values[0])
    if typing.get_origin(kind) is tuple and typing.get_args(kind) == (str, ...):
        return comma_list
    raise TypeError(f"{where}: type {kind!r} has no command-line form; use int, float, str, Path, bool, "
                    "tuple[str, ...], a Literal, or X | None of those")


def _show(default: Any) -> str | None:
    if default is dataclasses.MISSING or default is None:
        return None
    if isinstance(default, tuple):
        return ",".join(str(x) for x in default)
    return str(default)
