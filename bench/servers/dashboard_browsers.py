"""N real dashboard pages: headless Chromium tabs on the router's /dashboard.

    python bench/servers/dashboard_browsers.py URL [--pages 5]

Prints ``ready N`` once every tab shows the live state, then keeps them open until stopped.
Uses the DevTools driver of the test suite (``tests/cdp.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.cdp import Chromium, chromium_binary


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--pages", type=int, default=5)
    args = parser.parse_args()
    binary = chromium_binary()
    if binary is None:
        sys.exit("chromium is not installed (scripts/ensure-chromium.sh)")
    async with Chromium(binary) as browser:
        pages = [await browser.open(args.url + "/dashboard") for _ in range(args.pages)]
        for page in pages:
            await page.wait_for(
                "document.getElementById('status').dataset.state === 'live'", timeout_s=60
            )
        print(f"ready {args.pages}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
