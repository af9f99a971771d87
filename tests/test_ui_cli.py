"""`perfmode ui` costs the other commands nothing: the web stack loads with it alone."""

from __future__ import annotations

import subprocess
import sys

from perfmode.base.home import Home

HEAVY = ("torch", "starlette", "uvicorn", "fastapi", "anyio", "playwright")


def test_set_and_status_import_neither_the_web_stack_nor_torch(home: Home) -> None:
    code = (
        "import sys\n"
        "from perfmode.cli import app\n"
        "for args in (['set', 'performance'], ['status', '--json'], ['ui', '--help']):\n"
        "    try:\n"
        f"        app([*args, '--home', {str(home.root)!r}], standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
