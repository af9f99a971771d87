"""What a trainer reports: status.json typed, one dataclass per section (``model``), read and
written as a file and checked for a live writer (``file``), the status and metrics.csv rows
as training goes (``progress``), the progress bar or line (``progressbar``) and the dict
``perfmode status`` shows (``report``).

May import: errors, base, config, settings, schedule, checkpoint, env.
"""
