"""Load: what the clients send, when, and sending it (open loop).

- ``shapes``: request rate over time (``Constant``, ``Ramp``, ``Burst``) and arrival offsets;
- ``calls``: ``MethodSpec`` and method mixes;
- ``workload``: ``Workload``, the fluent value (shape + calls + transport, path, concurrency);
- ``replies``: what one answer tells the client (``Reply``, ``classify_reply``);
- ``loadgen``: ``run_workload``, the open-loop sender emitting one ``RequestRecord`` per request;
- ``subscribe_workload`` / ``subscribers``: WebSocket subscribers (``newHeads``, ``logs``).
"""
