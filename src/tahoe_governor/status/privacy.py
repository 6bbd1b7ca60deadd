"""Which fields of a status value are private, and the one filter that drops them.

Public fields are fit for the guessable ``/governor`` page, ``/metrics`` and
logs: counts, byte totals, rates, times, states, names of jobs and peers.
A field that may hold a capability, a local path or a secret is declared with
:func:`private_field` — the only way to mark one — and :func:`public_dict` is
the only filter: everything that leaves the node for a public reader goes
through it. Private pages use :func:`private_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

_PRIVATE_KEY = "tahoe_governor.private"


def private_field(**kwargs: Any) -> Any:
    """An ``attrs.field`` marked private (same keyword arguments as ``attrs.field``)."""
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[_PRIVATE_KEY] = True
    return attrs.field(metadata=metadata, **kwargs)


def is_private(field: attrs.Attribute[Any]) -> bool:
    """True if ``field`` was declared with :func:`private_field`."""
    return bool(field.metadata.get(_PRIVATE_KEY, False))


def public_dict(value: Any) -> Any:
    """``value`` as JSON-ready data with every private field removed, at any depth.

    attrs instances become dicts, tuples and lists become lists, mappings keep
    their keys as strings, and an infinite float (``UNLIMITED``) becomes
    ``None`` (JSON has no infinity).
    """
    return _as_data(value, include_private=False)


def private_dict(value: Any) -> Any:
    """``value`` as :func:`public_dict` gives it, private fields included (private page only)."""
    return _as_data(value, include_private=True)


def _as_data(value: Any, include_private: bool) -> Any:
    if attrs.has(type(value)):
        return {
            field.name: _as_data(getattr(value, field.name), include_private)
            for field in attrs.fields(type(value))
            if include_private or not is_private(field)
        }
    if isinstance(value, Mapping):
        return {str(k): _as_data(v, include_private) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_as_data(v, include_private) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return None
    return value
