"""Request shaping: the finality-aware response cache, in-flight dedup, eth_getLogs splitting
and monotonic heads, wrapped around ``Pipeline.execute`` (see ``shaping.shaper``).

The cache's storage seam is ``shaping.store.CacheStore``; ``shaping.memory.MemoryStore`` is the
in-process store.
"""
