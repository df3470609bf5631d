"""The HTTP side: the only layer that turns exceptions into JSON-RPC error objects.

- ``app.py``: ``RouterServer`` (lifecycle, one port) and the aiohttp app; owns the
  ``SubscriptionManager``.
- ``http1.py``, ``http1_conn.py``, ``http1_head.py``: the lean HTTP/1.1 front for
  ``POST /rpc/...`` (listener, connection protocol, pure head parser).
- ``rpc.py``: ``RpcHandler``, routes, batches and local answers, independent of the front.
- ``ws.py``: ``/ws/rpc`` client sockets; ``ops.py``: health, metrics, ``/api``;
  ``control.py``: the control API; ``errors.py``: the one error table. Client keys and
  limits: ``lasso_rpc.access``.
"""
