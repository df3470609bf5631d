"""Chaos: which fault, on which provider, when, for how long.

- ``base``: ``ChaosAction`` (check, wait, apply, record, revert) and the ``ChaosContext`` seam;
- ``layers``: ``ChaosLayers``, overlapping faults on one provider composing as layers;
- ``actions``: the built-in actions (kill, flap, degrade, latency, errors, blackhole, lag, ...);
- ``random_failures``: failures at exponential intervals, never all providers down;
- ``factory``: ``Chaos`` (the factory users call) and the registry of actions by name;
- ``parse``: ``chaos_from_dict``, the YAML form;
- ``basic_context``: ``BasicChaosContext`` for tests and simple runs, ``http_control``.

A new action: a frozen dataclass subclassing ``ChaosAction`` in ``actions`` (``action`` name,
``needs``, ``_apply`` returning how to revert), named in ``factory`` (``Chaos`` and
``ACTIONS``); YAML, validation, records and reports then follow.
"""
