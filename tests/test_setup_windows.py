"""The README's PowerShell set-up is the Makefile's, step for step: both are parsed and their
commands compared once spelled the same way (the venv's bin/ or Scripts\\, the Python that
makes it, pip's quiet flags)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP_QUIET = {"--quiet", "--disable-pip-version-check"}


def makefile_steps(text: str) -> dict[str, list[list[str]]]:
    """Each target's commands, variables expanded; the lines that only talk (echo) or mark
    (touch) are left out."""
    variables: dict[str, str] = {}
    recipes: dict[str, list[str]] = {}
    target = None
    for line in text.splitlines():
        if line.startswith("\t") and target is not None:
            recipes[target].append(line.strip())
            continue
        target = None
        if m := re.fullmatch(r"([A-Z_]+)\s*[?:]?=\s*(.*)", line):
            variables[m.group(1)] = m.group(2).strip()
        elif (m := re.fullmatch(r"([^\s:#]+):.*", line)) and not line.startswith("."):
            target = m.group(1)
            recipes[target] = []

    def expand(s: str) -> str:
        for _ in range(5):
            s = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), s)
        return s

    steps = {}
    for name, lines in recipes.items():
        commands = [shlex.split(expand(line.lstrip("@"))) for line in lines]
        steps[expand(name)] = [c for c in commands if c and c[0] not in ("echo", "touch")]
    return steps


def powershell_steps(readme: str) -> dict[str, list[list[str]]]:
    """The "Set-up on Windows" PowerShell block: the first lines install, `# make X` starts X."""
    section = readme.split("### Set-up on Windows", 1)[1].split("\n## ", 1)[0]
    block = section.split("```powershell\n", 1)[1].split("```", 1)[0]
    steps: dict[str, list[list[str]]] = {"install": []}
    current = "install"
    for line in block.splitlines():
        if m := re.fullmatch(r"# make (\w+)", line.strip()):
            current = m.group(1)
            steps[current] = []
        elif line.strip() and not line.startswith("#"):
            steps[current].append(shlex.split(line.replace("\\", "/")))
    return steps


def spelled_alike(cmd: list[str], venv_bin: str, python: tuple[str, ...]) -> list[str]:
    out = [a for a in cmd if a not in PIP_QUIET]
    if out[0] in python:
        out[0] = "PYTHON"
        if len(out) > 1 and re.fullmatch(r"-3(\.\d+)?", out[1]):  # py -3.11
            del out[1]
    out[0] = out[0].replace(venv_bin, "VENV/")
    return out


def test_the_powershell_setup_is_the_makefiles() -> None:
    make = makefile_steps((ROOT / "Makefile").read_text())
    ps = powershell_steps((ROOT / "README.md").read_text())
    installed = make[".venv/bin/.installed"]
    expected = {"install": installed, "demo": make["demo"], "test": make["test"]}
    assert set(ps) == set(expected)
    for name, commands in expected.items():
        want = [spelled_alike(c, ".venv/bin/", ("python3",)) for c in commands]
        got = [spelled_alike(c, ".venv/Scripts/", ("py", "python")) for c in ps[name]]
        assert got == want, name
    # Not an empty comparison: the steps a Windows user needs are there.
    assert ps["install"][1] == [".venv/Scripts/python", "-m", "pip", "install", "torch==2.13.0"]
    assert len(ps["demo"]) == 4 and len(ps["test"]) == 2


def test_the_parsers_see_a_difference() -> None:
    make = "BIN := .venv/bin\ndemo: x\n\t$(BIN)/perfmode train --timesteps 250000\n"
    readme = (
        "### Set-up on Windows\n```powershell\n# make demo\n.venv\\Scripts\\perfmode train\n```\n"
    )
    want = spelled_alike(makefile_steps(make)["demo"][0], ".venv/bin/", ("python3",))
    got = spelled_alike(powershell_steps(readme)["demo"][0], ".venv/Scripts/", ("py",))
    assert want == ["VENV/perfmode", "train", "--timesteps", "250000"]
    assert got != want
