"""YAML profile files → a validated ``Config``; every problem reported once, with its key path.

Per file: parse (syntax errors and duplicate keys with line and column), substitute ``${ENV}``,
check the cross-entry rules on the raw document (duplicate provider ids, chain names), validate
the whole file in one pass, then merge the profile's ``routing`` into each chain's. The profile
and chain routing blocks are validated as written, so a bad profile-level key is reported once at
``routing.x``, not once per chain. Errors are listed in document order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lasso_rpc.config.messages import Loc, format_loc, validation_errors
from lasso_rpc.config.models import (
    LOADER_CHECKS,
    ChainConfig,
    Config,
    ProfileConfig,
    ProfileFile,
    RoutingConfig,
)
from lasso_rpc.config.shared import access_profile_errors
from lasso_rpc.errors import ConfigError

__all__ = ["format_loc", "load_config", "load_config_text", "remember_secrets", "secrets_of"]

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Process-wide blocks (``server``, ...): in at most one file, kept out of the profile.
_GLOBAL_KEYS = tuple(k for k in Config.model_fields if k not in ("profiles", "default_profile"))

# Values that came from ${ENV} placeholders: always treated as secrets by the redactor. Values
# shorter than this (a port, a flag, a count) are not: masking "4100" would rewrite every
# timestamp and number that contains it, and such values are no credentials.
_MIN_SECRET_LEN = 8
_SUBSTITUTED: set[str] = set()


def secrets_of() -> frozenset[str]:
    """Every value substituted from the environment so far (masked wherever text is logged)."""
    return frozenset(_SUBSTITUTED)


def remember_secrets(*values: str) -> None:
    """Mask these values too wherever text is redacted (secrets from other files: a battle
    scenario's webhook URL or SMTP password)."""
    _SUBSTITUTED.update(v for v in values if v)


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """Safe loader that remembers duplicate mapping keys (PyYAML keeps the last silently)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        #: (key, where it is repeated, where it first was)
        self.duplicates: list[tuple[object, yaml.Mark, yaml.Mark]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        first: dict[object, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first:
                    self.duplicates.append((key, key_node.start_mark, first[key]))
                else:
                    first[key] = key_node.start_mark
            except TypeError:  # an unhashable key: the constructor reports it
                pass
        return super().construct_mapping(node, deep=deep)


def _where(src: str, mark: yaml.Mark | None) -> str:
    return f"{src}:{mark.line + 1}:{mark.column + 1}" if mark is not None else src


def _parse(src: str, text: str) -> tuple[Any, list[str]]:
    loader = _Loader(text)
    try:
        raw = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        msg = exc.problem or exc.context or "cannot parse"
        if exc.problem and exc.context and exc.context_mark is not None:
            cm = exc.context_mark
            msg += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
        return None, [f"{_where(src, exc.problem_mark or exc.context_mark)}: invalid YAML: {msg}"]
    except yaml.YAMLError as exc:
        return None, [f"{src}: invalid YAML: {exc}"]
    finally:
        loader.dispose()
    dups = [
        f"{_where(src, m)}: duplicate key {k!r} (first at line {was.line + 1}; only one counts)"
        for k, m, was in loader.duplicates
    ]
    return raw, dups


def _substitute(node: Any, path: Loc, env: Mapping[str, str], errs: dict[Loc, str]) -> Any:
    if isinstance(node, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                value = env[name]
            elif default is not None:
                value = default
            else:
                errs[path] = f"unresolved placeholder ${{{name}}}"
                return m.group(0)
            if len(value) >= _MIN_SECRET_LEN:
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


def _cross_checks(raw: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Rules over several entries, on the raw document: reported whatever else is wrong."""
    chains = raw.get("chains")
    if not isinstance(chains, dict):
        return []
    out: list[tuple[Loc, str]] = []
    owner: dict[str, str] = {}
    for cname, chain in chains.items():
        at: Loc = ("chains", str(cname))
        names: list[tuple[Loc, object]] = [(at, cname)]
        if isinstance(chain, dict):
            names.append(((*at, "chain_id"), chain.get("chain_id")))
            aliases = chain.get("aliases")
            if isinstance(aliases, list):
                names.extend(((*at, "aliases", i), a) for i, a in enumerate(aliases))
            providers = chain.get("providers")
            first: dict[str, int] = {}
            for i, p in enumerate(providers if isinstance(providers, list) else []):
                pid = p.get("id") if isinstance(p, dict) else None
                if isinstance(pid, str) and pid in first:
                    out.append(
                        (
                            (*at, "providers", i, "id"),
                            f"duplicate provider id {pid!r} (also providers[{first[pid]}])",
                        )
                    )
                elif isinstance(pid, str):
                    first[pid] = i
        for loc, name in names:
            if not isinstance(name, str | int) or isinstance(name, bool):
                continue
            other = owner.setdefault(str(name), str(cname))
            if other != cname:
                out.append(
                    (loc, f"{str(name)!r} is already a name, alias or id of chain {other!r}")
                )
    return out


def _doc_order(raw: Any, loc: Loc) -> tuple[int, ...]:
    """Position of ``loc`` in the document, so errors read top to bottom."""
    out: list[int] = []
    node = raw
    for part in loc:
        if isinstance(node, dict):
            keys = [str(k) for k in node]
            idx = keys.index(str(part)) if str(part) in keys else len(keys)
            out.append(idx)
            node = node.get(part) if part in node else None
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(1 << 30)
            node = None
    return tuple(out)


def _without_null_routing(raw: dict[str, Any]) -> dict[str, Any]:
    """``routing:`` left empty means no overrides (as in the profile, so in each chain)."""
    doc = {k: v for k, v in raw.items() if not (k == "routing" and v is None)}
    chains = doc.get("chains")
    if isinstance(chains, dict):
        doc["chains"] = {
            n: {k: v for k, v in c.items() if not (k == "routing" and v is None)}
            if isinstance(c, dict)
            else c
            for n, c in chains.items()
        }
    return doc


def _effective_routing(doc: dict[str, Any], pf: ProfileFile) -> dict[str, ChainConfig]:
    """Each chain's routing = the profile's, overridden key by key by the chain's own."""
    chains = {}
    for name, chain in pf.chains.items():
        own = doc["chains"][name].get("routing")
        if own:
            routing = RoutingConfig.model_validate(_merge(doc.get("routing") or {}, own))
        else:
            routing = pf.routing
        chains[name] = chain.model_copy(update={"routing": routing})
    return chains


def _load_one(raw: dict[str, Any], env: Mapping[str, str]) -> tuple[ProfileFile | None, list[str]]:
    """One parsed file → (the profile with each chain's effective routing, or None; errors)."""
    sub_errs: dict[Loc, str] = {}
    doc = _without_null_routing(_substitute(raw, (), env, sub_errs))
    found: list[tuple[Loc, str]] = list(sub_errs.items())
    pf: ProfileFile | None = None
    try:
        pf = ProfileFile.model_validate(doc, context={LOADER_CHECKS: True})
    except ValidationError as exc:
        for loc, msg in validation_errors(ProfileFile, exc):
            if not any(loc[: len(s)] == s for s in sub_errs):  # the placeholder says it all
                found.append((loc, msg))
    found.extend(_cross_checks(doc))
    found.sort(key=lambda e: _doc_order(doc, e[0]))
    errors = [f"{format_loc(loc)}: {msg}" for loc, msg in dict.fromkeys(found)]
    if errors or pf is None:
        return None, errors
    try:
        chains = _effective_routing(doc, pf)
    except ValidationError as exc:  # only if a cross-key rule rejects the merged block
        return None, [f"routing: {m}" for _, m in validation_errors(RoutingConfig, exc)]
    return pf.model_copy(update={"chains": chains}), []


def load_config_text(texts: list[tuple[str, str]], env: Mapping[str, str] | None = None) -> Config:
    """Validate profile documents given as (source name, YAML text) pairs."""
    env = os.environ if env is None else env
    errors: list[str] = []
    profiles: dict[str, ProfileConfig] = {}
    globals_: dict[str, tuple[str, Any]] = {}  # key -> (file, value)
    multi = len(texts) > 1
    for src, text in texts:
        prefix = f"{src}: " if multi else ""
        raw, syntax = _parse(src, text)
        errors.extend(syntax)
        if syntax and raw is None:
            continue
        if not isinstance(raw, dict):
            errors.append(f"{prefix}(root): expected a mapping with name, slug and chains")
            continue
        pf, errs = _load_one(raw, env)
        errors.extend(prefix + e for e in errs)
        for key in _GLOBAL_KEYS:
            if raw.get(key) is None:
                continue
            if key in globals_:
                errors.append(f"{prefix}{key}: already defined in {globals_[key][0]}")
            else:
                globals_[key] = (src, getattr(pf, key, None))
        if pf is None:
            continue
        fields = {k: getattr(pf, k) for k in ProfileConfig.model_fields}  # validated parts
        profile = ProfileConfig.model_validate(fields, context={LOADER_CHECKS: True})
        if profile.slug in profiles:
            errors.append(f"{prefix}slug: duplicate profile slug {profile.slug!r}")
            continue
        profiles[profile.slug] = profile
    if errors:
        raise ConfigError(errors)
    if not profiles:
        raise ConfigError(["(root): no profile found"])
    default = "default" if "default" in profiles else next(iter(profiles))
    blocks = {k: v for k, (_, v) in globals_.items() if v is not None}
    if blocks.get("access") is not None:
        errors.extend(access_profile_errors(blocks["access"], profiles, blocks.get("state")))
        if errors:
            raise ConfigError(errors)
    return Config(profiles=profiles, default_profile=default, **blocks)


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
