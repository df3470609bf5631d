"""One router, many processes: the state the workers of a host and the nodes of a cluster share.

What is shared, and how (docs/cluster.md tells it for operators):

- **Provider state** (``records.StateRecord``): breaker open/closed (with its deadline and
  hold), cordon, outlier ejection (with its deadline). A change in one process is published
  at once and applied by the others (``sync.StateSync``); the newest change wins (wall-clock
  time, then origin), so every process converges on the same state. Half-open is never
  shared: each process reaches it when the deadline passes and probes by itself.
- **Control actions**: a breaker or cordon change is provider state; a reload through the
  control API is a ``records.Command`` every process runs.
- **Rate-limit counters**: ``lasso_rpc.access`` buckets, in the hub or in Redis.
- **Reads that must see every worker** (``/metrics``, ``/api/providers``, ``/api/events``):
  gathered through the hub (``views``); nodes are scraped one by one, as Prometheus does.

The one seam is ``peers.Peers``: ``publish`` a record or command, receive the others'. Two
backends implement it: ``hub_link.HubLink`` (sibling workers of ``serve --workers N``, through
their parent, ``hub.Hub``, over socketpairs made at spawn) and ``redis_peers.RedisPeers``
(nodes on several hosts, through Redis pub/sub and a hash; fail-open behind a breaker of its
own, ``redis_guard.RedisGuard``).
"""
