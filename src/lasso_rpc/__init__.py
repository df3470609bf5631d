"""lasso-rpc: a smart JSON-RPC router for Ethereum-style chains, with a chaos battle framework."""

__version__ = "0.1.0"
__all__ = ["__version__"]
