"""The Chinese README says everything the English one does: the same commands, sections and names."""

from __future__ import annotations

import re

from helpers import ROOT

FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
CODE = re.compile(r"`([^`\n]+)`")


def _commands(text: str) -> list[str]:
    """Every line of every fenced block, comments left out (they are translated)."""
    lines = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            if line.lstrip().startswith("#"):
                continue
            line = re.sub(r"\s+#\s.*$", "", line).rstrip()
            if line:
                lines.append(line)
    return lines


def _names(text: str) -> set[str]:
    """Inline code that names something a reader types or looks for: options, paths, files,
    commands, settings."""
    prose = FENCE.sub("", text)
    return {c for c in CODE.findall(prose) if c.startswith(("--", "domainfit", "make ", "$")) or "/" in c
            or re.search(r"\.(csv|md|json|jsonl|yaml|safetensors|onnx)\b", c) or "=" in c}


def test_the_chinese_readme_has_every_command_block_line_of_the_english_one():
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    assert _commands(chinese) == _commands(english)
    assert len(re.findall(r"^## ", chinese, re.M)) == len(re.findall(r"^## ", english, re.M))
    missing = _names(english) - _names(chinese)
    assert not missing, f"named in README.md but not in README.zh-CN.md: {sorted(missing)}"
    assert "README.zh-CN.md" in english and "README.md" in chinese
