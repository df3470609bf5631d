"""N open dashboard pages, as the router sees them: the requests the page's script makes.

    python bench/servers/dashboard_pages.py URL [--pages 5]

Each page loads ``/dashboard`` and its script and style, ``/api/chains`` once, polls
``/api/providers`` every ``POLL_MS`` and follows ``/api/events`` with the types the script asks
for (both read from ``dashboard.js`` itself, so this stays what the page does), decoding every
JSON frame as a browser would. Prints ``ready N`` once every page got its first summary, then
``summaries N`` every 5 s. For the router's side of the cost without a browser's CPU on the
machine; ``bench/dashboard_load.py --browsers`` opens real Chromium tabs instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

import aiohttp

JS = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "lasso_rpc"
    / "dashboard"
    / "assets"
    / "dashboard.js"
)


def page_requests() -> tuple[list[str], int]:
    """The event types the page follows and its poll interval, read from its script."""
    js = JS.read_text()
    types_src = re.search(r"const TYPES = \[([^\]]*)\]", js, re.S)
    poll = re.search(r"const POLL_MS = .*?\|\| (\d+);", js)
    assert types_src and poll, "dashboard.js changed: update bench/servers/dashboard_pages.py"
    return re.findall(r'"([a-z.]+)"', types_src.group(1)), int(poll.group(1))


async def one_page(
    http: aiohttp.ClientSession, url: str, types: list[str], poll_ms: int, ready: asyncio.Event
) -> None:
    for path in ("/dashboard", "/dashboard/app.js", "/dashboard/app.css", "/api/chains"):
        async with http.get(url + path) as r:
            r.raise_for_status()
            await r.read()

    async def poll() -> None:
        while True:
            async with http.get(url + "/api/providers") as r:
                json.loads(await r.read())
            await asyncio.sleep(poll_ms / 1000)

    poller = asyncio.create_task(poll())
    try:
        async with http.get(url + "/api/events?types=" + ",".join(types)) as r:
            async for line in r.content:
                if line.startswith(b"data: "):
                    d = json.loads(line[6:])
                    if d.get("type") == "stats.summary":
                        COUNTS[0] += 1
                        ready.set()
    finally:
        poller.cancel()


COUNTS = [0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--pages", type=int, default=5)
    args = parser.parse_args()
    types, poll_ms = page_requests()
    readies = [asyncio.Event() for _ in range(args.pages)]
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        pages = [
            asyncio.create_task(one_page(http, args.url, types, poll_ms, ev)) for ev in readies
        ]
        await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in readies)), 30)
        print(f"ready {args.pages}", flush=True)
        while True:
            done = [p for p in pages if p.done()]
            if done:
                done[0].result()  # a page that ended: raise its error
                sys.exit("a page's stream ended")
            await asyncio.sleep(5)
            print(f"summaries {COUNTS[0]}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
