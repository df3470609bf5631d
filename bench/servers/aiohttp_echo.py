"""The bare aiohttp.web JSON-RPC echo issue 2 compares with: parse (orjson), answer the id.

    python bench/servers/aiohttp_echo.py

Binds 127.0.0.1 on a free port and prints ``listening PORT``; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

HOST = "127.0.0.1"


def _serve_aiohttp_echo() -> None:
    """The bare aiohttp.web server issue 2 compares with: parse (orjson), answer the id."""
    import orjson
    import uvloop
    from aiohttp import web

    async def rpc(request: web.Request) -> web.Response:
        msg = orjson.loads(await request.read())
        out = orjson.dumps({"jsonrpc": "2.0", "id": msg.get("id"), "result": "0x1234"})
        return web.Response(body=out, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", rpc)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"listening {port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


if __name__ == "__main__":
    _serve_aiohttp_echo()
