"""What a trainer reports: status.json (``file``), the progress and metrics.csv rows
(``progress``), the progress line (``progressbar``) and the dict ``perfmode status`` shows
(``report``).

May import: errors, base, config, settings, schedule, checkpoint, env.
"""
