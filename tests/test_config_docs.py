"""Every setting is documented in docs/configuration.md (a new field without docs fails here)."""

from __future__ import annotations

from pathlib import Path

from herald.config import HeraldConfig

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = []
    for section, field in HeraldConfig.model_fields.items():
        assert f"## `[{section}]`" in text, f"section [{section}] is not documented"
        model = field.annotation
        for candidate in getattr(model, "__args__", (model,)):
            for name in getattr(candidate, "model_fields", {}):
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
    for section, field in HeraldConfig.model_fields.items():
        model = field.annotation
        for candidate in getattr(model, "__args__", (model,)):
            for name, info in getattr(candidate, "model_fields", {}).items():
                doc = documented.get(f"{section}.{name}")
                if doc is None or info.is_required() or info.default_factory is not None:
                    continue
                if _as_doc(info.default) != doc:
                    wrong.append(f"{section}.{name}: docs say {doc}, the code has {_as_doc(info.default)}")
    assert not wrong, wrong
