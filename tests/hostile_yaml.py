"""YAML that expands past any machine's memory, for the config reader's tests and benchmark."""

from __future__ import annotations


def alias_bomb() -> str:
    # 9 levels of 9 aliases each: about 390 million values once expanded, in 426 bytes.
    text, prev = '&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]', "a"
    for name in "bcdefghi":
        text = f"[{text}, &{name} [{', '.join([f'*{prev}'] * 9)}]]"
        prev = name
    return f"env:\n  window: {text}\n"


def merge_bomb() -> str:
    # The same through merge keys (<<), which expand while the mapping is built.
    lines = ["a0: &a0 {k: 1}"]
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} {{<<: [{refs}], k{i}: 1}}")
    return "\n".join(lines) + "\n"
