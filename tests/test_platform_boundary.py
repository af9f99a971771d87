"""Only perfmode.base.platform makes the OS-specific calls: the rest asks it. A scan of the
source (its syntax tree, so comments and prose do not count) keeps it that way."""

from __future__ import annotations

import ast
from pathlib import Path

import perfmode

SRC = Path(perfmode.__file__).parent
PLATFORM = SRC / "base" / "platform"

BANNED_ATTRIBUTES = {
    "os": {"nice", "killpg", "setsid", "replace", "rename", "fchmod", "getpriority", "setpriority"},
    "signal": {"SIGHUP", "SIGBREAK", "CTRL_BREAK_EVENT", "CTRL_C_EVENT"},
    "subprocess": {"CREATE_NEW_PROCESS_GROUP"},
    "sys": {"platform"},
}
BANNED_KEYWORDS = {"start_new_session", "creationflags", "preexec_fn"}
BANNED_STRINGS = {"SIGHUP", "SIGBREAK", "CTRL_BREAK_EVENT"}  # getattr(signal, "SIGHUP")
BANNED_PATH_PREFIXES = ("/proc", "/sys/")


def violations(source: str) -> list[str]:
    """What in ``source`` belongs in the platform package, one ``line: what`` each."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> module, from `import os as _os`
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in BANNED_ATTRIBUTES:
                    modules[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in BANNED_ATTRIBUTES:
            for alias in node.names:
                if alias.name in BANNED_ATTRIBUTES[node.module]:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = modules.get(node.value.id)
            if module and node.attr in BANNED_ATTRIBUTES[module]:
                found.append(f"{node.lineno}: {module}.{node.attr}")
            if module == "os" and node.attr == "name":
                found.append(f"{node.lineno}: os.name")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "rename"
        ):
            found.append(f"{node.lineno}: .rename()")  # Path.rename: os.rename underneath
        elif isinstance(node, ast.keyword) and node.arg in BANNED_KEYWORDS:
            found.append(f"{node.value.lineno}: {node.arg}=")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (node.value in BANNED_STRINGS or node.value.startswith(BANNED_PATH_PREFIXES))
        ):
            found.append(f"{node.lineno}: {node.value!r}")
    return found


def test_the_scan_finds_each_kind_of_os_call() -> None:
    source = """
import os as _os, signal, subprocess, sys
from os import replace
from pathlib import Path
_os.nice(5); _os.killpg(1, 2); _os.setsid(); _os.replace("a", "b")
signal.signal(signal.SIGHUP, None); getattr(signal, "SIGBREAK", None)
subprocess.Popen(["x"], start_new_session=True)
Path("/proc/cpuinfo").read_text(); open(f"/proc/{1}/status"); Path("a").rename("b")
if sys.platform == "win32" or _os.name == "nt": pass
"""
    found = " ".join(violations(source))
    for what in (
        "from os import replace",
        "os.nice",
        "os.killpg",
        "os.setsid",
        "os.replace",
        "signal.SIGHUP",
        "'SIGBREAK'",
        "start_new_session=",
        "'/proc/cpuinfo'",
        "'/proc/'",
        ".rename()",
        "sys.platform",
        "os.name",
    ):
        assert what in found, what
    # Prose is not a call: a docstring or comment may speak of SIGHUP and /proc/stat.
    assert violations('"""Reads /proc/stat; stops on SIGHUP."""\n# os.replace(a, b)\n') == []


def test_no_module_outside_the_platform_package_makes_an_os_specific_call() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if PLATFORM in path.parents:
            continue
        found += [f"{path.relative_to(SRC)}:{v}" for v in violations(path.read_text("utf-8"))]
    assert found == [], "call perfmode.base.platform instead:\n" + "\n".join(found)
