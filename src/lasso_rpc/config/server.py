"""The process-wide ``server:`` block: listen address, control API, client rate limit, logs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lasso_rpc.config.base import Frozen
from lasso_rpc.config.limits import ServerLimits

__all__ = ["ClientRateLimit", "ControlConfig", "ServerConfig", "ServerLimits"]


class ControlConfig(Frozen):
    """The control API (/api/control/...): breakers, cordons, reload. Off by default."""

    enabled: bool = Field(default=False, description="Serve the control API.", examples=[True])
    token: str | None = Field(
        default=None,
        description="Bearer token every control call must send; required when enabled.",
        examples=["${LASSO_CONTROL_TOKEN}"],
    )
    allow_remote: bool = Field(
        default=False, description="Also serve clients that are not on loopback (127.0.0.1, ::1)."
    )

    @model_validator(mode="after")
    def _token_when_enabled(self) -> ControlConfig:
        if self.enabled and not self.token:
            raise ValueError("token is required when enabled is true")
        return self


class ClientRateLimit(Frozen):
    """Per client address token bucket; over it a call gets -32005 (HTTP 429)."""

    requests_per_second: Annotated[float, Field(gt=0)] = Field(
        description="Sustained calls per second per client address (a batch item counts).",
        examples=[50],
    )
    burst: Annotated[int, Field(ge=1)] = Field(
        default=100, description="Bucket size: calls at once."
    )


class ServerConfig(Frozen):
    """Process-wide settings; ``lasso-rpc serve --host/--port`` override host and port."""

    host: str = Field(default="127.0.0.1", description="Listen address (0.0.0.0: every interface).")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=4000, description="Listen port (0: any free port)."
    )
    control: ControlConfig = Field(default=ControlConfig(), description="The control API.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="Level of the JSON log lines on stderr (debug logs every request).",
    )
    public_ws_base: str | None = Field(
        default=None,
        description="Base of data.websocket_url, the answer to a subscription asked over "
        "HTTP; unset: a path on this server (/ws/rpc/<chain>). Set it behind a proxy.",
        examples=["wss://rpc.example.com"],
    )
    rate_limit: ClientRateLimit | None = Field(
        default=None,
        description="Per-client-address rate limit: the older spelling of access.per_ip, "
        "used when access.per_ip is unset.",
        examples=[{"requests_per_second": 50}],
    )
    front: Literal["fast", "aiohttp"] = Field(
        default="fast",
        description="fast: POST /rpc/... through the lean HTTP/1.1 front, the rest through "
        "aiohttp; aiohttp: everything through aiohttp (about half the throughput).",
    )
    limits: ServerLimits = Field(
        default=ServerLimits(),
        description="Limits against slow, greedy and malformed clients (headers, timeouts, "
        "connections, pipelining, JSON nesting, WebSocket messages and subscriptions).",
    )
