"""Configuration: YAML profiles → frozen, validated models."""

from lasso_rpc.config.loader import format_loc, load_config, load_config_text, secrets_of
from lasso_rpc.config.models import (
    BreakerConfig,
    ChainConfig,
    Config,
    ControlConfig,
    HedgeConfig,
    MethodsConfig,
    ProfileConfig,
    ProviderConfig,
    RoutingConfig,
    ServerConfig,
    Strategy,
    canonical_strategy,
)

__all__ = [
    "BreakerConfig",
    "ChainConfig",
    "Config",
    "ControlConfig",
    "HedgeConfig",
    "MethodsConfig",
    "ProfileConfig",
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
