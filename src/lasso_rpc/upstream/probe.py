"""What the health poll last learned about one provider: when it last answered, when it last
failed and why. Written by ``upstream/heads.py``, read by ``upstream/readiness.py``."""

from __future__ import annotations

__all__ = ["ProbeRecord", "health_window_ms", "probe_timeout_ms"]


def probe_timeout_ms(poll_ms: int) -> int:
    """How long one health poll waits for its answer: the poll interval, at most 5 s."""
    return min(poll_ms, 5000)


def health_window_ms(poll_ms: int) -> int:
    """How old a provider's last answered poll may be for it to count as usable.

    Polls of a chain run together: a round lasts up to one probe timeout (a hung provider holds
    the round), then the tracker sleeps one interval. Two intervals plus that timeout is the
    longest gap between two answers of a healthy provider; a failed poll counts at once.
    """
    return 2 * poll_ms + probe_timeout_ms(poll_ms)


class ProbeRecord:
    """Mutable, one per provider; times are the router clock's monotonic milliseconds."""

    __slots__ = ("failures", "last_error", "last_failed_ms", "last_ok_ms")

    def __init__(self) -> None:
        self.last_ok_ms: float | None = None
        self.last_failed_ms: float | None = None
        self.last_error: str | None = None
        #: Failed polls since the last answered one.
        self.failures = 0

    def answered(self, now_ms: float) -> None:
        self.last_ok_ms = now_ms
        self.failures = 0

    def failed(self, now_ms: float, error: str) -> None:
        self.last_failed_ms = now_ms
        self.last_error = error
        self.failures += 1

    @property
    def last_failed(self) -> bool:
        """The most recent poll failed (or none answered yet but one failed)."""
        if self.last_failed_ms is None:
            return False
        return self.last_ok_ms is None or self.last_failed_ms >= self.last_ok_ms

    def __repr__(self) -> str:
        return (
            f"ProbeRecord(ok_at={self.last_ok_ms} failed_at={self.last_failed_ms}"
            f" failures={self.failures} error={self.last_error!r})"
        )
