"""Every setting is documented in docs/configuration.md (a new field without docs fails here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from herald.config import HeraldConfig

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _sections() -> Iterator[tuple[str, dict[str, FieldInfo]]]:
    """(section, its fields): every top-level table, and a table's own sub-table such as
    `[qq.delivery]` (a field whose type is a section itself)."""
    for section, field in HeraldConfig.model_fields.items():
        for candidate in getattr(field.annotation, "__args__", (field.annotation,)):
            fields = getattr(candidate, "model_fields", None)
            if fields is None:
                continue
            yield section, fields
            for name, inner in fields.items():
                if isinstance(inner.annotation, type) and issubclass(inner.annotation, BaseModel):
                    yield f"{section}.{name}", inner.annotation.model_fields


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = []
    for section, fields in _sections():
        assert f"## `[{section}]`" in text, f"section [{section}] is not documented"
        for name in fields:
            if f"| `{name}` |" not in text:
                missing.append(f"{section}.{name}")
    assert not missing, f"undocumented settings: {missing}"


def _documented_defaults(text: str) -> dict[str, str]:
    """`name` → the default cell, for rows whose default is one plain literal like `60`."""
    found: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## `["):
            section = line.split("`[", 1)[1].split("]`", 1)[0]
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 3 and cells[1].startswith("`") and cells[1].endswith("`"):
            default = cells[2]
            if default.count("`") == 2 and default.startswith("`") and default.endswith("`"):
                found[f"{section}.{cells[1].strip('`')}"] = default.strip("`")
    return found


def _as_doc(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(_as_doc(v) for v in value) + "]"
    return str(value)


def test_documented_defaults_match_the_code() -> None:
    documented = _documented_defaults(DOCS.read_text(encoding="utf-8"))
    wrong = []
    for section, fields in _sections():
        for name, info in fields.items():
            doc = documented.get(f"{section}.{name}")
            if doc is None or info.is_required() or info.default_factory is not None:
                continue
            if _as_doc(info.default) != doc:
                wrong.append(f"{section}.{name}: docs say {doc}, the code has {_as_doc(info.default)}")
    assert not wrong, wrong
