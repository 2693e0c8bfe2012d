"""Rendering segments into platform messages (pure functions)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from herald.core.segments import Markdown, Media, MediaKind, Text
from herald.core.target import Scene
from herald.qq.render import apply_url_policy, render, split_text


def test_split_prefers_paragraphs_then_lines_then_sentences() -> None:
    assert split_text("aaaa\n\nbbbb", 8) == ["aaaa", "bbbb"]
    assert split_text("aaaa\nbbbb", 6) == ["aaaa", "bbbb"]
    assert split_text("第一句。第二句。第三句。", 9) == ["第一句。第二句。", "第三句。"]


@given(st.text(min_size=1, max_size=400), st.integers(min_value=1, max_value=60))
def test_split_never_exceeds_the_limit_and_loses_no_characters(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(len(chunk) <= limit for chunk in chunks)
    # Only whitespace at a cut may go.
    assert "".join("".join(chunks).split()) == "".join(text.split())


def test_adjacent_text_joins_media_stands_alone_and_markdown_falls_back() -> None:
    image = Media(MediaKind.IMAGE, url="https://x/y.png", caption="cap")
    parts = render([Text("a"), Text("b"), image, Markdown("**m**")], Scene.C2C)
    assert [(p.kind, p.text) for p in parts] == [("text", "ab"), ("media", "cap"), ("markdown", "**m**")]
    refused = render([Markdown("**m**")], Scene.C2C, markdown_ok=False)
    assert [(p.kind, p.text) for p in refused] == [("text", "**m**")]
    guild = render([Markdown("**m**")], Scene.CHANNEL)
    assert [p.kind for p in guild] == ["text"]


def test_group_url_policy() -> None:
    text = "see https://example.com/a?b=1 now"
    assert apply_url_policy(text, "keep") == text
    assert apply_url_policy(text, "strip") == "see now"
    assert apply_url_policy(text, "break") == "see hxxps://example[.]com/a?b=1 now"
    parts = render([Text(text)], Scene.GROUP, url_policy="strip")
    assert parts[0].text == "see now"
    assert render([Text(text)], Scene.C2C, url_policy="strip")[0].text == text  # groups only
