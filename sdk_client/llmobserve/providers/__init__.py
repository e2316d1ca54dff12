"""The response formats the SDK reads, one module each, and the tables built from them.

Adding a provider is a change to one file: a new format is a new module here defining
``FORMAT`` (a ``Format``: its providers and hosts, which paths are billable, how its bodies and
streams give the model and usage), found at import; a new provider speaking an existing
format is one line in that format's ``providers``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Dict, FrozenSet, Optional, Tuple

from ._base import Format, Parsed, Tokens

__all__ = ["Format", "Parsed", "Tokens", "FORMATS", "BY_NAME", "EXACT_HOSTS", "SUFFIX_HOSTS", "MATCHERS",
           "USAGE_KEYS", "SSE_EVENTS", "SSE_FINAL", "SSE_FINAL_IF", "get"]


def _discover() -> Dict[str, Format]:
    found: Dict[str, Format] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        fmt = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FORMAT", None)
        if isinstance(fmt, Format):
            found[fmt.name] = fmt
    return found


BY_NAME: Dict[str, Format] = _discover()

FORMATS: Dict[str, str] = {}  # provider name -> format name
EXACT_HOSTS: Dict[str, str] = {}  # host -> provider name
SUFFIX_HOSTS: Tuple[Tuple[str, str], ...] = ()  # (host suffix, provider name)
MATCHERS: Tuple[Callable[[str], Optional[str]], ...] = ()  # bare host -> provider name, or None
USAGE_KEYS: Tuple[bytes, ...] = ()  # b'"usage"' … : searched in bodies too big to decode
SSE_EVENTS: FrozenSet[bytes] = frozenset()
SSE_FINAL: FrozenSet[bytes] = frozenset()
SSE_FINAL_IF: Dict[bytes, Callable[[bytes], bool]] = {}

for _fmt in BY_NAME.values():
    for _provider, _hosts in _fmt.providers.items():
        FORMATS[_provider] = _fmt.name
        for _host in _hosts:
            EXACT_HOSTS[_host] = _provider
    SUFFIX_HOSTS += _fmt.suffixes
    if _fmt.match_host is not None:
        MATCHERS += (_fmt.match_host,)
    USAGE_KEYS += tuple(k for k in (f'"{key}"'.encode() for key in _fmt.usage_keys) if k not in USAGE_KEYS)
    SSE_EVENTS |= _fmt.sse_events
    SSE_FINAL |= _fmt.sse_final
    SSE_FINAL_IF.update(_fmt.sse_final_if)


def get(name: str) -> Optional[Format]:
    return BY_NAME.get(name)
