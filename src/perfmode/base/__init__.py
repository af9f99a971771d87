"""The ground floor: the clock (``clock``), a process tree's CPU time (``cputime``), bounded
reads of the small files anyone can put in the home (``smallfile``), atomic writes
(``fsutil``) and replacing a file people edit by hand (``safereplace``), log files that
never stop the program (``logfile``), the home folder's layout (``home``), file text made
fit for a terminal (``text``), seconds read from an environment variable (``envvars``),
the mode table (``modes``: what each mode is, as data), and
``platform``: every call that differs between Linux, macOS and Windows.

Nothing here knows about training; everything above may use it.

May import: errors.
"""
