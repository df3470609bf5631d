"""Facts about JSON-RPC methods that decide what the router does before any routing."""

from __future__ import annotations

__all__ = ["LOCAL_METHODS", "SIGNING_METHODS", "SUBSCRIPTION_METHODS", "refusal_reason"]

#: Need a key held by the node: never forwarded (a hosted provider must not sign for anyone).
SIGNING_METHODS = frozenset(
    {
        "eth_sendTransaction",
        "eth_sign",
        "eth_signTransaction",
        "eth_signTypedData",
        "eth_signTypedData_v3",
        "eth_signTypedData_v4",
        "eth_accounts",
        "eth_requestAccounts",
    }
)
SIGNING_PREFIXES = ("personal_",)

#: Only meaningful on a WebSocket.
SUBSCRIPTION_METHODS = frozenset({"eth_subscribe", "eth_unsubscribe"})

#: Answered from configuration, never forwarded.
LOCAL_METHODS = frozenset({"eth_chainId"})


def refusal_reason(method: str) -> str | None:
    """Why the router refuses a method outright, or None."""
    if method in SIGNING_METHODS or method.startswith(SIGNING_PREFIXES):
        return f"method {method} needs a node-held key and is not available through lasso-rpc"
    return None
