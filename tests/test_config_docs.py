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
