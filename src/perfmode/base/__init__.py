"""The ground floor: the clock, small-file and atomic-replace helpers, log files, the home
folder's layout, and the mode table (``modes``: what each mode is, as data).

Nothing here knows about training; everything above may use it.

May import: errors.
"""
