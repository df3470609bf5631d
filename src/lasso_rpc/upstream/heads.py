"""Head polling: each provider's head, the chain's consensus head and every provider's lag.

One task per chain polls ``eth_blockNumber`` on every provider each ``head_poll_ms``. The poll is
also the breaker's background probe: a provider that stops answering opens its breaker with no
user traffic, and the poll is the probe that closes it again. It is the probe of an ejected
provider too (``resilience/ejection.py``: it comes back once its poll answers), and it is spent
from the provider's ``rate_limit_rps`` like any other request. A lag change is published as a
``provider.health`` event (through the ``publish_health`` hook the chain passes in).

With ``watch_blocks(listener)`` (the response cache needs block hashes to see reorgs) the probe is
``eth_getBlockByNumber("latest", false)`` instead, and each answer's number, hash and parent
hash go to the listener as well.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import msgspec

from lasso_rpc.clock import SYSTEM_CLOCK, Clock
from lasso_rpc.errors import TransportError
from lasso_rpc.jsonrpc.codec import decode_upstream
from lasso_rpc.observability.redact import redact
from lasso_rpc.resilience.classify import ErrorClass
from lasso_rpc.upstream.probe import probe_timeout_ms
from lasso_rpc.upstream.provider import ProviderRuntime

__all__ = ["HeadTracker"]

_HEAD_PROBE = b'{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber","params":[]}'
_BLOCK_PROBE = b'{"jsonrpc":"2.0","id":0,"method":"eth_getBlockByNumber","params":["latest",false]}'
#: (provider, number, hash, parent hash) of each head block a probe saw.
BlockListener = Callable[[ProviderRuntime, int, str, str], None]


class _Head(msgspec.Struct):
    number: str
    hash: str
    parentHash: str


_head_decoder = msgspec.json.Decoder(_Head)


class HeadTracker:
    """Owns the head-polling task of one chain: ``start``, then ``stop`` or ``aclose``."""

    def __init__(
        self,
        chain: str,
        providers: Mapping[str, ProviderRuntime],
        *,
        poll_ms: int,
        publish_health: Callable[[ProviderRuntime], None],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._chain = chain
        self._providers = providers
        self._poll_ms = poll_ms
        self._publish_health = publish_health
        self._clock = clock
        self.consensus_head: int | None = None
        #: Poll rounds completed (tests count rounds rather than wall-clock time).
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._on_block: BlockListener | None = None

    def watch_blocks(self, listener: BlockListener) -> None:
        """Probe with the head block (not only its number) and report each one seen."""
        self._on_block = listener

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._track(), name=f"heads:{self._chain}")

    def stop(self) -> None:
        """Cancel polling now without waiting for it (``aclose`` awaits the task)."""
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _track(self) -> None:
        interval = self._poll_ms / 1000.0
        while True:
            await self.poll_round()
            await asyncio.sleep(interval)

    async def poll_round(self) -> None:
        """One round: every provider probed at once, then the lags (the task's loop body)."""
        await asyncio.gather(*(self._probe(p) for p in self._providers.values()))
        self._update_lag()
        self.rounds += 1

    async def _probe(self, p: ProviderRuntime) -> None:
        breaker = p.breaker
        if not breaker.closed and not breaker.acquire():
            return
        timeout = probe_timeout_ms(self._poll_ms) / 1000.0
        if p.rate_cap is not None:
            p.rate_cap.charge()
        on_block = self._on_block
        block: _Head | None = None
        try:
            resp = await p.transport.post(
                _HEAD_PROBE if on_block is None else _BLOCK_PROBE, timeout_s=timeout
            )
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            reply = decode_upstream(resp.body)
            if not isinstance(reply.result, msgspec.Raw):
                raise ValueError("answered with an error")
            if on_block is None:
                head = int(msgspec.json.decode(bytes(reply.result)), 16)
            else:
                block = _head_decoder.decode(bytes(reply.result))
                head = int(block.number, 16)
        except (
            TransportError,
            ValueError,
            TypeError,
            msgspec.DecodeError,
            msgspec.ValidationError,
        ) as exc:
            breaker.record(ErrorClass.PROVIDER)
            p.probe.failed(self._clock.now_ms(), _describe(exc))
            p.ejection.probe(False)
            return
        breaker.record(None)
        p.probe.answered(self._clock.now_ms())
        p.ejection.probe(True)
        p.head = head
        if on_block is not None and block is not None:
            on_block(p, head, block.hash, block.parentHash)

    def _update_lag(self) -> None:
        providers = self._providers.values()
        heads = [p.head for p in providers if p.head is not None]
        if not heads:
            return
        self.consensus_head = max(heads)
        for p in providers:
            lag = None if p.head is None else self.consensus_head - p.head
            if lag != p.lag:
                p.lag = lag
                self._publish_health(p)

    def __repr__(self) -> str:
        running = self._task is not None and not self._task.done()
        return (
            f"HeadTracker({self._chain} head={self.consensus_head}"
            f" every={self._poll_ms}ms running={running})"
        )


def _describe(exc: Exception) -> str:
    """A failed poll in a few words for /ready (URLs masked)."""
    if isinstance(exc, msgspec.MsgspecError):
        return f"not a JSON-RPC answer ({exc})"[:160]
    text = redact(str(exc)) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
