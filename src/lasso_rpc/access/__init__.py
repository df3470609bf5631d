"""Access control: API keys, client rate limits and quotas (the ``access:`` config block).

``keys`` finds the client a request belongs to (constant-time key comparison, names for
metrics, keys never logged); ``limits`` turns a client and a request into the bucket checks it
must pass; ``buckets`` runs them (this process, the hub of ``serve --workers N``, or Redis
with one atomic script), all-or-nothing; ``gate`` puts it together for the server, failing
open (or as configured) when the shared store is unreachable.
"""
