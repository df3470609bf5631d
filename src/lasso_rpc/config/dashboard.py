"""The process-wide ``dashboard:`` block (SPEC §8): who may open ``GET /dashboard``."""

from __future__ import annotations

from pydantic import Field

from lasso_rpc.config.base import Frozen

__all__ = ["DashboardConfig"]


class DashboardConfig(Frozen):
    """The live dashboard page (/dashboard, read-only). Loopback clients always get it."""

    enabled: bool = Field(
        default=False,
        description="Serve /dashboard to every client, not only to loopback (127.0.0.1, ::1). "
        "The page only reads /api/providers, /api/chains and /api/events, which are served "
        "to everyone either way.",
        examples=[True],
    )
