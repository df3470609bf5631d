"""Providers and the router under test, as real servers and processes on loopback.

- ``spec``: ``Knobs``, ``FailureMode``, ``MockFleetSpec`` (values);
- ``mock``, ``mock_ws``, ``mock_rpc``: ``MockProvider`` (HTTP + WebSocket) and its methods;
- ``fleet``: ``MockFleet``, providers sharing one chain, and its ready config;
- ``blocks``, ``chain``: the deterministic ``SimulatedChain`` and its values;
- ``anvil``, ``lockstep``: real anvil nodes, alone or sharing one chain;
- ``faults``, ``faultproxy``: the TCP ``FaultProxy`` and the network faults it applies;
- ``process``: process groups with PR_SET_PDEATHSIG (anvil, router nodes, benchmarks);
- ``router_process``, ``router_process_sync``: ``lasso-rpc serve`` as a child process, the one
  way to start, kill, restart and stop a router node;
- ``router_host``: where a scenario's router runs (``RouterHost``: in-process or a child).
"""
