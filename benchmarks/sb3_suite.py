"""Stable-Baselines3's own PPO and VecNormalize tests, against stock SB3 and the lean classes.

Not a benchmark (``make bench`` runs ``bench_*.py`` only): the check behind README's "The
fast path" that wherever ``LeanPPO``, ``LeanMlpPolicy`` and ``TrainingVecNormalize`` stand in
for ``PPO``, ``MlpPolicy`` and ``VecNormalize``, SB3's tests pass as they do on SB3 itself.

    .venv/bin/python benchmarks/sb3_suite.py [--sdist stable_baselines3-X.tar.gz]

It downloads the sdist of the installed SB3 version (``pip download --no-deps --no-binary
:all:``; the sdist ships ``tests/``) into a temporary folder, never into this repository,
unpacks it, and sets the unpacked package aside so that the tests import the installed SB3.
Then it runs the same selection twice, from the sdist's test files that mention ``PPO`` or
``VecNormalize``: every test whose id names PPO (a word of its name or a parameter, any
case), every test of ``test_vec_normalize.py``, and every test whose function builds a
``VecNormalize``:

- **stock**: as they are;
- **lean**: with a plugin loaded before the test modules import SB3's names, which puts
  ``LeanPPO`` in place of ``PPO`` (its ``"MlpPolicy"`` alias naming ``LeanMlpPolicy``),
  ``LeanMlpPolicy`` in place of ``MlpPolicy`` and ``TrainingVecNormalize`` in place of
  ``VecNormalize``, and checks after collection that every test module holds them.

It prints the outcome counts each way and every test that passes on stock SB3 but not on the
lean classes, and exits 1 if there is one. Tests that need what this environment lacks (a
GPU, tensorboard, opencv) are skipped both ways alike.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

SELECT = '''
"""The selection, the same in both runs."""
import inspect
import re

# PPO as a word of the id (test_a2c_ppo_..., [...-PPO]), not the "ppo" inside "MlpPolicy".
_PPO = re.compile(r"(?<![a-z])ppo(?![a-z])", re.IGNORECASE)


def _builds_vec_normalize(item):
    try:
        return "VecNormalize(" in inspect.getsource(item.function)
    except (AttributeError, OSError, TypeError):
        return False


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        chosen = (
            _PPO.search(item.nodeid.replace("LeanPPO", "PPO"))
            or item.nodeid.startswith("tests/test_vec_normalize.py::")
            or _builds_vec_normalize(item)
        )
        (keep if chosen else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
'''

LEAN = '''
"""Loaded before SB3's test modules are imported: the lean classes under SB3's names."""
import stable_baselines3
import stable_baselines3.ppo
from stable_baselines3.common import vec_env

from perfmode.env.vec_env import TrainingVecNormalize
from perfmode.training.fastppo import LeanPPO
from perfmode.training.policy import LeanMlpPolicy

LeanPPO.policy_aliases = {**LeanPPO.policy_aliases, "MlpPolicy": LeanMlpPolicy}
stable_baselines3.PPO = stable_baselines3.ppo.PPO = LeanPPO
stable_baselines3.ppo.MlpPolicy = LeanMlpPolicy
vec_env.VecNormalize = TrainingVecNormalize


def pytest_collection_finish(session):
    # Proof that the swap came first: each test module holds the lean classes by SB3's names.
    swapped = {"PPO": LeanPPO, "VecNormalize": TrainingVecNormalize}
    modules = {item.module for item in session.items if getattr(item, "module", None)}
    wrong = sorted(
        f"{m.__name__}.{name}"
        for m in modules
        for name, lean in swapped.items()
        if name in vars(m) and vars(m)[name] is not lean
    )
    if wrong:
        raise RuntimeError(f"SB3's classes, not the lean ones, in {wrong}")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(f"lean classes in place in {len(modules)} test modules")
'''

# Parameter ids name the class: the same test is "...-PPO]" on SB3, "...-LeanPPO]" here.
LEAN_NAMES = {
    "LeanPPO": "PPO",
    "LeanMlpPolicy": "MlpPolicy",
    "TrainingVecNormalize": "VecNormalize",
}


def sb3_version() -> str:
    import stable_baselines3

    return stable_baselines3.__version__


def fetch_sdist(into: Path) -> Path:
    version = sb3_version()
    cmd = [sys.executable, "-m", "pip", "download", f"stable-baselines3=={version}"]
    cmd += ["--no-deps", "--no-binary", ":all:", "--quiet", "-d", str(into)]
    subprocess.run(cmd, check=True)
    return next(into.glob("stable_baselines3-*.tar.gz"))


def unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as tar:
        tar.extractall(into, filter="data")
    root = next(p for p in into.iterdir() if p.is_dir() and (p / "tests").is_dir())
    # The tests must import the installed SB3 (the one perfmode runs), not this copy.
    package = root / "stable_baselines3"
    if package.is_dir():
        package.rename(root / "_unpacked_stable_baselines3")
    return root


def selected_files(root: Path) -> list[str]:
    files = [
        p
        for p in (root / "tests").glob("test_*.py")
        if any(name in p.read_text(encoding="utf-8") for name in ("PPO", "VecNormalize"))
    ]
    return sorted(str(p.relative_to(root)) for p in files)


def run(root: Path, files: list[str], lean: bool, work: Path) -> dict[str, str]:
    """Each test's outcome: passed, failed, error or skipped."""
    name = "lean" if lean else "stock"
    report = work / f"{name}.xml"
    plugins = ["sb3_suite_select", *(["sb3_suite_lean"] if lean else [])]
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    for plugin in plugins:
        cmd += ["-p", plugin]
    cmd += ["--junitxml", str(report), *files]
    path = os.pathsep.join(filter(None, [str(work), os.environ.get("PYTHONPATH")]))
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    # -P: the sdist's folder is not put first on sys.path as the current directory.
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run([cmd[0], "-P", *cmd[1:]], cwd=root, env=env, check=False)
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        for lean_name, sb3_name in LEAN_NAMES.items():
            test = test.replace(lean_name, sb3_name)
        kinds = {child.tag for child in case}
        outcome = "passed"
        for kind in ("error", "failure", "skipped"):
            if kind in kinds:
                outcome = {"failure": "failed"}.get(kind, kind)
                break
        outcomes[test] = outcome
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="an sdist already downloaded")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sb3-suite-") as tmp:
        work = Path(tmp)
        (work / "sb3_suite_select.py").write_text(SELECT, encoding="utf-8")
        (work / "sb3_suite_lean.py").write_text(LEAN, encoding="utf-8")
        sdist = args.sdist or fetch_sdist(work)
        root = unpack(sdist, work / "src")
        files = selected_files(root)
        stock = run(root, files, lean=False, work=work)
        lean = run(root, files, lean=True, work=work)
    print(f"\nSB3 {sb3_version()}'s tests, {len(files)} files: {', '.join(files)}")
    for name, outcomes in (("stock SB3", stock), ("lean classes", lean)):
        counts = Counter(outcomes.values())
        print(f"  {name:<13} " + ", ".join(f"{counts[k]} {k}" for k in sorted(counts)))
    worse = sorted(t for t, o in stock.items() if o == "passed" and lean.get(t) != "passed")
    for test in worse:
        print(f"  passes on SB3 only: {test} ({lean.get(test, 'not run')})")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
