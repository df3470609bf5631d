"""Upstream providers at run time, per chain.

- ``provider.py``: ``ProviderRuntime`` (identity, transport, stats, breaker, head, lag) and
  ``build_provider`` (its transport from ``transport/factory.py``, breaker events on the bus).
- ``heads.py``: ``HeadTracker``, the head poll that is also every breaker's background probe.
- ``chain.py``: ``ChainRuntime`` owns one chain's providers, strategy instances and head
  tracker; ``decide`` hands them to ``routing/candidates.py``.
"""
