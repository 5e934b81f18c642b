"""The ``dbmigrate`` command: the top of the package tree, imported by nothing.

``main`` dispatches each sub-command to the module that registers it: the step commands of
``runner``, and here ``operator`` (runs ``controller``), ``lint``, ``wait`` and ``crd``.
"""
