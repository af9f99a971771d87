"""The training config: the YAML file, its sections as dataclasses (``schema``; the
``env:`` section in ``env``, ``modes:`` and ``auto:`` in ``modes``, ``sweep:`` in
``sweep``), layering over the embedded default, errors that name the key and its line,
and ``perfmode config show``'s view of it.

May import: errors, base.
"""
