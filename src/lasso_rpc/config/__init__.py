"""Configuration: YAML profiles → frozen, validated models (reference: docs/config.md)."""

from lasso_rpc.config.loader import format_loc, load_config, load_config_text, secrets_of
from lasso_rpc.config.models import (
    BreakerConfig,
    ChainConfig,
    ClientRateLimit,
    Config,
    ControlConfig,
    EjectionConfig,
    HedgeConfig,
    MethodsConfig,
    ProfileConfig,
    ProfileFile,
    ProviderConfig,
    RoutingConfig,
    ServerConfig,
    Strategy,
    canonical_strategy,
)

__all__ = [
    "BreakerConfig",
    "ChainConfig",
    "ClientRateLimit",
    "Config",
    "ControlConfig",
    "EjectionConfig",
    "HedgeConfig",
    "MethodsConfig",
    "ProfileConfig",
    "ProfileFile",
    "ProviderConfig",
    "RoutingConfig",
    "ServerConfig",
    "Strategy",
    "canonical_strategy",
    "format_loc",
    "load_config",
    "load_config_text",
    "secrets_of",
]
