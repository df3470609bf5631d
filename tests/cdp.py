"""A small Chrome DevTools Protocol driver for headless Chromium (live pages, not --dump-dom).

Chromium runs with its own temporary profile and no network but loopback: every other
connection goes to a dead proxy and no name resolves. ``Page.requests`` records every URL the
page asked for, so a test can check that nothing came from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson

__all__ = ["Chromium", "Page", "chromium_binary"]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        if path := shutil.which(name):
            return path
    return None


class Page:
    """One tab: ``evaluate`` JavaScript, ``wait_for`` a condition, ``screenshot``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.requests: list[str] = []
        self.console: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = orjson.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(str(data["error"])))
                    else:
                        fut.set_result(data.get("result", {}))
            elif data.get("method") == "Network.requestWillBeSent":
                self.requests.append(data["params"]["request"]["url"])
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console.append(str(data["params"]["exceptionDetails"]))
            elif data.get("method") == "Runtime.consoleAPICalled":
                args = data["params"].get("args", [])
                self.console.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("DevTools connection closed"))

    async def send(self, method: str, **params: Any) -> Any:
        mid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        await self._ws.send_str(
            orjson.dumps({"id": mid, "method": method, "params": params}).decode()
        )
        return await asyncio.wait_for(fut, 30)

    async def evaluate(self, expression: str) -> Any:
        out = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in out:
            raise RuntimeError(str(out["exceptionDetails"]))
        return out["result"].get("value")

    async def wait_for(
        self, expression: str, *, timeout_s: float = 10.0, every_s: float = 0.02
    ) -> Any:
        """Evaluate until the value is truthy; the last value on timeout (TimeoutError)."""
        async with asyncio.timeout(timeout_s):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await asyncio.sleep(every_s)

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def screenshot(self, path: Path, *, width: int, height: int) -> None:
        import base64

        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        out = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(out["data"]))

    async def aclose(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Chromium:
    """``async with Chromium(binary) as browser: page = await browser.open(url)``."""

    def __init__(self, binary: str, *, width: int = 1400, height: int = 1000) -> None:
        self.binary = binary
        self.width, self.height = width, height
        self._dir: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pages: list[Page] = []
        self.port = 0

    async def __aenter__(self) -> Chromium:
        self._dir = tempfile.mkdtemp(prefix="lasso-chromium-")
        self._proc = await asyncio.create_subprocess_exec(
            *[
                self.binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                f"--user-data-dir={self._dir}",
                # no network but loopback: a dead proxy for everything else, no names resolve
                "--proxy-server=127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--hide-scrollbars",
                f"--window-size={self.width},{self.height}",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                "about:blank",
            ],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            port_file = Path(self._dir) / "DevToolsActivePort"
            async with asyncio.timeout(30):
                while not port_file.exists() or not port_file.read_text().strip():
                    if self._proc.returncode is not None:
                        raise RuntimeError(f"chromium exited with code {self._proc.returncode}")
                    await asyncio.sleep(0.05)
            self.port = int(port_file.read_text().split()[0])
            self._session = aiohttp.ClientSession()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def open(self, url: str) -> Page:
        """A new tab with request recording on, at ``url``."""
        assert self._session is not None
        async with self._session.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as r:
            target = await r.json(content_type=None)
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        self._pages.append(page)
        await page.send("Network.enable")
        await page.send("Runtime.enable")
        await page.send("Page.enable")
        await page.navigate(url)
        return page

    async def aclose(self) -> None:
        for page in self._pages:
            with contextlib.suppress(Exception):
                await page.aclose()
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
