"""The effective configuration as the settings page shows it: TOML-like sections, every key with
the value in effect and where it came from, secrets masked before anything reaches a template.

Where a value came from: `console` (an operator's value in the database), `env` (a `HERALD_*`
variable names the key or a table holding it), `file` (given explicitly: the TOML file, or the
arguments of a program embedding Herald) or `default`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

from herald.agent.settings import SYSTEM_PROMPT, AgentSettings
from herald.config import HeraldConfig

MASK = "••••"
# Variables handed to an MCP server's process: where its API keys usually go.
_SECRET_TABLES = frozenset({"env"})


@dataclass(frozen=True, slots=True)
class ConfigValue:
    key: str
    value: str  # as shown: secrets already masked
    source: str  # console | env | file | default


@dataclass(frozen=True, slots=True)
class ConfigSection:
    name: str
    values: list[ConfigValue]


def effective_config(
    config: HeraldConfig, agent: AgentSettings | None, environ: Mapping[str, str]
) -> list[ConfigSection]:
    env_names = {name.upper() for name in environ if name.upper().startswith("HERALD_")}
    sections: list[ConfigSection] = []
    for name in HeraldConfig.model_fields:
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            sections.extend(_sections((name,), value, env_names, agent))
        else:
            source = _source((name,), name in config.model_fields_set, env_names)
            sections.append(ConfigSection(name, [ConfigValue("", _shown(value, secret=False), source)]))
    return sections


def _sections(
    path: tuple[str, ...], model: BaseModel, env_names: set[str], agent: AgentSettings | None
) -> Iterator[ConfigSection]:
    values: list[ConfigValue] = []
    tables: list[ConfigSection] = []
    for key in type(model).model_fields:
        value = getattr(model, key)
        here = (*path, key)
        if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            for name, table in value.items():
                tables.extend(_sections((*here, name), table, env_names, agent))
            continue
        if agent is not None and ".".join(here) == SYSTEM_PROMPT and agent.overridden(SYSTEM_PROMPT):
            values.append(ConfigValue(key, _shown(agent.system_prompt, secret=False), "console"))
            continue
        source = _source(here, key in model.model_fields_set, env_names)
        values.append(ConfigValue(key, _shown(value, secret=key in _SECRET_TABLES), source))
    yield ConfigSection(".".join(path), values)
    yield from tables


def _source(path: tuple[str, ...], set_explicitly: bool, env_names: set[str]) -> str:
    # `HERALD_LLM__MODELS='{...}'` sets everything under it: any prefix of the key counts.
    for length in range(1, len(path) + 1):
        if "HERALD_" + "__".join(path[:length]).upper() in env_names:
            return "env"
    return "file" if set_explicitly else "default"


def _shown(value: Any, *, secret: bool) -> str:
    """`value` in TOML-like notation, with every secret in it masked."""
    return json.dumps(_masked(value, secret), ensure_ascii=False) if value is not None else "(unset)"


def _masked(value: Any, secret: bool) -> Any:
    if isinstance(value, SecretStr) or (secret and isinstance(value, str)):
        return MASK
    if isinstance(value, dict):
        return {str(k): _masked(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v, secret) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return _without_password(value)
    if isinstance(value, BaseModel):
        return {k: _masked(getattr(value, k), secret) for k in type(value).model_fields}
    return value


def _without_password(text: str) -> str:
    """A URL's password (`postgresql://user:secret@host/db`) masked; other text as it is."""
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    netloc = parts.netloc.replace(f":{password}@", f":{MASK}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def shorten(value: str | None, limit: int = 80) -> str | None:
    """An audited value short enough for a table cell."""
    if value is None:
        return None
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
