"""Real processes racing on settings.json: an editor saving in place, and `perfmode set`."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from perfmode.base.home import Home
from tests.conftest import SET_WRITER

# An editor that saves in place: open with truncate, write (in two parts, as a buffered
# writer may), close; its buffer holds the user's keys and a save counter.
EDITOR = """
import json, os, random, sys, time
path, stop = sys.argv[1], sys.argv[2]
i = 0
while True:
    last = os.path.exists(stop)
    i += 1
    text = json.dumps({"performance_mode": "quiet", "mine": "typed", "note": [1, 2], "saved": i})
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT)
    os.write(fd, text[:20].encode())
    time.sleep(random.random() * 0.002)
    os.write(fd, text[20:].encode())
    os.close(fd)
    if last:
        break
    time.sleep(random.random() * 0.02)
print(i)
"""


def test_an_editor_saving_in_place_never_loses_a_key_to_perfmode_set(home: Home) -> None:
    home.settings.write_text(
        json.dumps({"performance_mode": "quiet", "mine": "typed", "note": [1, 2], "saved": 0})
    )
    stop = home.root / "stop-editing"
    editor = subprocess.Popen(
        [sys.executable, "-c", EDITOR, str(home.settings), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", SET_WRITER, str(home.root), "20", str(i)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 240
    seen, complete = 0, 0
    try:
        while any(p.poll() is None for p in [editor, *writers]):
            assert time.monotonic() < deadline, "the race did not finish in 4 minutes"
            if all(w.poll() is not None for w in writers):
                stop.touch()  # the editor saves once more, then stops
            try:
                data = json.loads(home.settings.read_bytes())
            except ValueError:
                continue  # the editor is between its truncate and its write: its own doing
            seen += 1
            if isinstance(data, dict):
                complete += 1
                # Whatever `perfmode set` wrote still holds what the person typed.
                assert data.get("mine") == "typed" and data.get("note") == [1, 2], data
    finally:
        for p in [editor, *writers]:
            if p.poll() is None:
                p.kill()
    for w in writers:
        assert w.wait(60) == 0, w.stderr.read()
    out, err = editor.communicate(timeout=60)
    assert editor.returncode == 0, err
    final = json.loads(home.settings.read_text())
    assert final["saved"] == int(out) and final["mine"] == "typed" and final["note"] == [1, 2]
    assert complete > 20, (seen, complete)
    assert [p.name for p in home.root.iterdir() if p.name.endswith(".tmp")] == []
