"""The web page of ``perfmode ui``: see and steer training from a browser.

Importing this package imports nothing heavy: the web stack (Starlette, uvicorn) comes in
with ``server.serve`` and ``app``, which only ``perfmode ui`` uses. See docs/ui.md.

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor,
training, evaluation, sweep, bench.
"""
