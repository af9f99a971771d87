"""The training config: the YAML file read bounded (``yamlfile``), its sections as
dataclasses (``schema``; the ``env:`` section in ``env``, ``modes:`` and ``auto:`` in
``modes``, built from the mode table, ``sweep:`` and its search space in ``sweep``),
layering over the embedded default with errors that name the key and its line
(``sections``), and ``perfmode config show``'s view of it (``view``).

May import: errors, base.
"""
