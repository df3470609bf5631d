"""Shared helpers of the benchmark suite (``import lib as c`` in every ``bench/*.py`` script:
they run as ``.venv/bin/python bench/X.py``, so ``bench/`` is on ``sys.path``).

- ``lib.machine``: paths, core pinning (``SUT_CPU``/``AUX_CPU``), Debian tools, ports, CPU time;
- ``lib.processes``: ``Stack`` (owns a temp dir and every child process), ``Child``, ``Pids``;
- ``lib.servers``: upstream, aiohttp echo, router (``lasso_rpc``'s router launcher), nginx,
  and talking to them (``check_ok``, ``metrics``, ``router_stats``);
- ``lib.wrk``: ``run_wrk`` and ``WrkResult``;
- ``lib.profiling``: py-spy and its hot spots;
- ``lib.tables``: numbers and Markdown tables;
- ``lib.args``: the common flags and the header.

The helper servers are scripts of their own in ``bench/servers/``.
"""

from lib.args import apply_quick, common_args, header
from lib.machine import (
    AUX_CPU,
    BENCH_DIR,
    HOST,
    PYTHON,
    REPO,
    SUT_CPU,
    cpu_model,
    cpu_seconds,
    free_port,
    machine_busy_s,
    machine_info,
    pin_self,
    pinning_available,
    require,
    tool_version,
    wait_port,
)
from lib.processes import Child, Pids, Stack, interrupt_exit, pinned
from lib.profiling import hot_spots, print_hot_spots, py_spy_exe, start_py_spy
from lib.servers import (
    BLOCK_NUMBER,
    CHAIN,
    GET_LOGS,
    Server,
    check_ok,
    metric_sum,
    metrics,
    post,
    request_outcomes,
    router_config,
    router_stats,
    router_url,
    start_aiohttp_echo,
    start_nginx,
    start_router,
    start_upstream,
)
from lib.tables import delta_us, fmt, median, ratio, table
from lib.wrk import NOISE_LIMIT, WrkResult, cpu_note, run_wrk, wrk_script

__all__ = [
    "AUX_CPU",
    "BENCH_DIR",
    "BLOCK_NUMBER",
    "CHAIN",
    "GET_LOGS",
    "HOST",
    "NOISE_LIMIT",
    "PYTHON",
    "REPO",
    "SUT_CPU",
    "Child",
    "Pids",
    "Server",
    "Stack",
    "WrkResult",
    "apply_quick",
    "check_ok",
    "common_args",
    "cpu_model",
    "cpu_note",
    "cpu_seconds",
    "delta_us",
    "fmt",
    "free_port",
    "header",
    "hot_spots",
    "interrupt_exit",
    "machine_busy_s",
    "machine_info",
    "median",
    "metric_sum",
    "metrics",
    "pin_self",
    "pinned",
    "pinning_available",
    "post",
    "print_hot_spots",
    "py_spy_exe",
    "ratio",
    "request_outcomes",
    "require",
    "router_config",
    "router_stats",
    "router_url",
    "run_wrk",
    "start_aiohttp_echo",
    "start_nginx",
    "start_py_spy",
    "start_router",
    "start_upstream",
    "table",
    "tool_version",
    "wait_port",
    "wrk_script",
]
