"""settings.json: the one writer of the requested mode (``store``) and the holds in it
(``holds``). Every process that changes the mode goes through here.

May import: errors, base, config.
"""
