"""Typed configs: dataclasses loaded from YAML/dicts with dotted overrides and strict validation.

Every config in nextscale is a plain dataclass. `load_config` turns YAML (or a dict) plus
`--set a.b=value` overrides into one, rejecting unknown keys and wrong types with the key's
dotted name and what was expected, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union, get_args, get_origin

import yaml

from .errors import ConfigError

T = TypeVar("T")
# YAML 1.1 (PyYAML) reads `2e-3` and `1e5` as strings: it wants a dot in scientific notation.
_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"     # YAMLs shipped as package data


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _coerce(opt, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        args = get_args(tp)
        vt = args[1] if args else Any
        return {str(k): _coerce(vt, v, _join(where, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def from_dict(schema: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build the dataclass `schema` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys to values, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean '{_join(where, close[0])}'?" if close else f"; known keys: {', '.join(sorted(fields))}"
            raise ConfigError(f"unknown config key '{_join(where, str(key))}'{hint}")
        kwargs[key] = _coerce(hints[key], value, _join(where, key))
    try:
        return schema(**kwargs)
    except ConfigError as e:
        if where and not str(e).startswith(where):
            raise ConfigError(f"{where}: {e}") from None
        raise


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON/YAML-friendly data."""
    return dataclasses.asdict(cfg)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], schema: type | None = None) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected KEY=VALUE, e.g. model.latent_dim=64")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override '{item}': value is not valid YAML ({e})") from None
        parts = key.split(".")
        node = data
        sub_schema = schema
        for i, part in enumerate(parts[:-1]):
            if sub_schema is not None:
                sub_fields = {f.name: f for f in dataclasses.fields(sub_schema)}
                if part not in sub_fields:
                    raise ConfigError(f"override '{item}': unknown config key '{'.'.join(parts[:i + 1])}'")
                hint = typing.get_type_hints(sub_schema)[part]
                sub_schema = hint if dataclasses.is_dataclass(hint) else None
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{item}': '{'.'.join(parts[:i + 1])}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def packaged_configs() -> dict[str, Path]:
    """Bare name -> YAML shipped inside the package (`nextscale configs` lists them)."""
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def resolve_config_path(source: str | Path) -> Path:
    """A YAML file as given if it exists, else a packaged config by bare name.

    `sat-paper`, `sat-paper.yaml` and the clone-era `configs/sat-paper.yaml` all name the
    shipped file, so the same command works from a clone and from a wheel install.
    """
    path = Path(source)
    if path.is_file():
        return path
    shipped = packaged_configs()
    name = path.name[: -len(path.suffix)] if path.suffix in (".yaml", ".yml") else path.name
    if str(path.parent) in (".", "configs") and name in shipped:
        return shipped[name]
    raise ConfigError(f"{source}: config file not found, and not the name of a packaged config "
                      f"(one of: {', '.join(shipped)})")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (a path or a packaged config's name), with errors that name the file."""
    path = resolve_config_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(
    source: str | Path | Mapping[str, Any] | Any | None,
    schema: type[T],
    overrides: Sequence[str] = (),
    section: str | None = None,
) -> T:
    """Load `schema` from a YAML path or packaged config name, a dict, an instance or None, then apply overrides.

    `section` picks a sub-mapping (e.g. "model") when the source is a whole training config;
    it is used only when present in the source and not itself a field of `schema`. Overrides may
    then name keys with or without the section (`data.n=8` and `n=8` alike).
    """
    origin = ""
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, (str, Path)):
        origin = str(source)
        data = read_yaml(source)
    elif dataclasses.is_dataclass(source) and not isinstance(source, type):
        data = to_dict(source)
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        raise ConfigError(f"cannot build {schema.__name__} from {type(source).__name__}")
    field_names = {f.name for f in dataclasses.fields(schema)}
    if section and section not in field_names:
        if section in data:
            data = dict(data[section] or {})
        overrides = [o.removeprefix(f"{section}.") for o in overrides]
    data = apply_overrides(data, overrides, schema)
    try:
        return from_dict(schema, data)
    except ConfigError as e:
        if origin:
            raise ConfigError(f"{origin}: {e}") from None
        raise
