"""YAML profile files → a validated ``Config``; every problem reported with its key path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lasso_rpc.config.models import Config, ProfileConfig, ServerConfig
from lasso_rpc.errors import ConfigError

__all__ = ["format_loc", "load_config", "load_config_text", "secrets_of"]

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Values that came from ${ENV} placeholders: always treated as secrets by the redactor.
_SUBSTITUTED: set[str] = set()


def secrets_of() -> frozenset[str]:
    """Every value substituted from the environment so far (masked wherever text is logged)."""
    return frozenset(_SUBSTITUTED)


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _substitute(
    node: Any, path: tuple[int | str, ...], env: Mapping[str, str], errs: list[str]
) -> Any:
    if isinstance(node, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                value = env[name]
            elif default is not None:
                value = default
            else:
                errs.append(f"{format_loc(path)}: unresolved placeholder ${{{name}}}")
                return m.group(0)
            if value:
                _SUBSTITUTED.add(value)
            return value

        return _PLACEHOLDER.sub(repl, node)
    if isinstance(node, dict):
        return {k: _substitute(v, (*path, str(k)), env, errs) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, (*path, i), env, errs) for i, v in enumerate(node)]
    return node


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def _prepare_profile(raw: dict[str, Any]) -> dict[str, Any]:
    """Merge profile routing defaults into each chain's own ``routing`` block."""
    profile_routing = raw.get("routing") or {}
    chains = raw.get("chains")
    if isinstance(chains, dict) and isinstance(profile_routing, dict):
        merged = {}
        for name, chain in chains.items():
            if isinstance(chain, dict):
                chain = dict(chain)
                chain["routing"] = _merge(profile_routing, chain.get("routing") or {})
            merged[name] = chain
        raw = {**raw, "chains": merged}
    return raw


def _validation_errors(prefix: str, exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        loc = format_loc(tuple(e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{prefix}{loc}: {msg}")
    return out


def load_config_text(texts: list[tuple[str, str]], env: Mapping[str, str] | None = None) -> Config:
    """Validate profile documents given as (source name, YAML text) pairs."""
    env = os.environ if env is None else env
    errors: list[str] = []
    profiles: dict[str, ProfileConfig] = {}
    server: ServerConfig | None = None
    server_src = ""
    multi = len(texts) > 1
    for src, text in texts:
        prefix = f"{src}: " if multi else ""
        try:
            raw = yaml.load(text, Loader=_YAML_LOADER)
        except yaml.YAMLError as exc:
            errors.append(f"{src}: invalid YAML: {exc}")
            continue
        if not isinstance(raw, dict):
            errors.append(f"{prefix}(root): expected a mapping with name, slug and chains")
            continue
        sub_errs: list[str] = []
        raw = _substitute(raw, (), env, sub_errs)
        errors.extend(prefix + e for e in sub_errs)
        server_raw = raw.pop("server", None)
        if server_raw is not None:
            if server is not None:
                errors.append(f"{prefix}server: already defined in {server_src}")
            else:
                try:
                    server = ServerConfig.model_validate(server_raw)
                    server_src = src
                except ValidationError as exc:
                    errors.extend(f"{prefix}server.{e}" for e in _validation_errors("", exc))
        try:
            profile = ProfileConfig.model_validate(_prepare_profile(raw))
        except ValidationError as exc:
            errors.extend(_validation_errors(prefix, exc))
            continue
        if profile.slug in profiles:
            errors.append(f"{prefix}slug: duplicate profile slug {profile.slug!r}")
            continue
        profiles[profile.slug] = profile
    if errors:
        raise ConfigError(errors)
    if not profiles:
        raise ConfigError(["(root): no profile found"])
    default = "default" if "default" in profiles else next(iter(profiles))
    return Config(profiles=profiles, default_profile=default, server=server or ServerConfig())


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load one profile file, or every ``*.yaml``/``*.yml`` file of a directory."""
    p = Path(path)
    if p.is_dir():
        files = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        if not files:
            raise ConfigError([f"{p}: no *.yaml profile files"])
    elif p.is_file():
        files = [p]
    else:
        raise ConfigError([f"{p}: no such file or directory"])
    return load_config_text([(f.name, f.read_text()) for f in files], env)
