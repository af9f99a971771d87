"""The web page of ``perfmode ui``: see and steer training from a browser.

The server (``server``) and its routes (``app``), who may call them (``security``); the
state the page shows (``snapshot``), watched and pushed as files change (``hub``), with each
run's metrics.csv read as it grows (``metrics``) and the home's sweeps (``sweeps``);
starting and stopping trainers (``launcher``). The page itself is ``static/``.

Importing this package imports nothing heavy: the web stack (Starlette, uvicorn) comes in
with ``server.serve`` and ``app``, which only ``perfmode ui`` uses. See docs/ui.md.

May import: errors, base, config, settings, schedule, checkpoint, env, status, governor,
training, evaluation, sweep, bench.
"""
