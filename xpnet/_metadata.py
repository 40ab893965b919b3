"""Typed checks of the JSON metadata in xpnet's files: every field a checkpoint or model file holds is checked here
against what xpnet itself writes, before any of it is used.

A check is a pair ``(ok, expected)``: ``ok(value)`` says whether a value is acceptable, ``expected`` describes the
acceptable values in the error message. A schema maps field names to checks (or, for :func:`check_fields`, to
nested schemas). Every failure is a ``ValueError`` naming the file, the field, what was expected and what was got.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ._npz import MALFORMED
from ._random import rng_from_state

__all__ = [
    "ACCURACIES",
    "ACCURACY",
    "ANYTHING",
    "COUNT",
    "DICT",
    "POSITIVE",
    "REALS",
    "STR",
    "check_schema",
    "format_checker",
    "is_int",
    "is_real",
    "is_rng_state",
    "read_rng_state",
]

Check = tuple[Callable[[Any], bool], str]


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_rng_state(v: Any) -> bool:
    """Whether ``v`` has the outer shape of :func:`xpnet._random.rng_state` (its fields are checked on reading)."""
    return isinstance(v, dict) and isinstance(v.get("global"), bool) and isinstance(v.get("state"), dict)


COUNT: Check = (lambda v: is_int(v) and v >= 0, "an int >= 0")
POSITIVE: Check = (lambda v: is_int(v) and v >= 1, "an int >= 1")
FINITE: Check = (lambda v: is_real(v) and math.isfinite(v), "a finite number")
REALS: Check = (lambda v: isinstance(v, list) and all(is_real(x) for x in v), "a list of numbers")
ACCURACY: Check = (lambda v: is_real(v) and 0 <= v <= 1, "a number in [0, 1]")
ACCURACIES: Check = (lambda v: isinstance(v, list) and all(ACCURACY[0](x) for x in v), "a list of numbers in [0, 1]")
STR: Check = (lambda v: isinstance(v, str), "a str")
DICT: Check = (lambda v: isinstance(v, dict), "a dict")
ANYTHING: Check = (lambda v: True, "anything")


def check_schema(node: dict, schema: Mapping[str, Check], file: str, prefix: str = "") -> None:
    """``ValueError`` naming ``file`` and the key (after ``prefix``) unless ``node`` has every key of ``schema``
    with a value its check accepts; other keys are left alone."""
    for key, (ok, expected) in schema.items():
        if key not in node:
            raise ValueError(f"{file}: metadata has no key {prefix + key!r}; the file is damaged or hand-edited")
        if not ok(node[key]):
            raise ValueError(f"{file}: metadata key {prefix + key!r} must be {expected}, got {node[key]!r:.80}")


def format_checker(
    fmt: str, version: int, schema: Mapping[str, Check], *, what: str, version_name: str
) -> Callable[[dict, str], None]:
    """A ``check_meta(meta, file)`` for :func:`xpnet._npz.read_npz`: the file's format is ``fmt`` (``what`` names
    it in messages), its version at most ``version`` (``version_name``), and its metadata fits ``schema``."""

    def check(meta: dict, file: str) -> None:
        if not meta:
            raise ValueError(f"{file}: not an {what}: it has no xpnet metadata")
        if meta.get("format") != fmt:
            raise ValueError(f"{file}: not an {what}: its format is {meta.get('format')!r}")
        check_schema(meta, {"version": COUNT}, file)
        if meta["version"] > version:
            raise ValueError(f"{file} has {version_name} {meta['version']}; this xpnet reads up to {version}")
        check_schema(meta, schema, file)

    return check


def check_fields(node: dict, fields: Mapping[str, Any], bad: Callable[[str], ValueError], prefix: str = "") -> None:
    """Check dict ``node`` against ``fields`` (name -> nested fields or a check): same names, every value
    accepted; ``bad(detail)`` builds the error."""
    unknown, missing = sorted(set(node) - set(fields)), sorted(set(fields) - set(node))
    if missing:
        raise bad(f"it has no field {prefix + missing[0]!r}")
    if unknown:
        raise bad(f"unknown field(s) {[prefix + k for k in unknown]}")
    for name, field in fields.items():
        value = node[name]
        if isinstance(field, dict):
            if not isinstance(value, dict):
                raise bad(f"field {prefix + name!r} must be a dict, got {value!r:.60}")
            check_fields(value, field, bad, f"{prefix}{name}/")
        elif not field[0](value):
            raise bad(f"field {prefix + name!r} must be {field[1]}, got {value!r:.60}")


# Random states


def _int_in(low: int, high: int) -> Check:
    return (lambda v: is_int(v) and low <= v <= high), f"an int in [{low}, {high}]"


def _uint_array(bits: int, n: int) -> Check:
    """A NumPy array of ``n`` uint``bits`` values as :func:`xpnet._random.rng_state` writes it."""

    def ok(v: Any) -> bool:
        if not (isinstance(v, dict) and set(v) == {"__ndarray__", "dtype"} and v["dtype"] == f"uint{bits}"):
            return False
        values = v["__ndarray__"]
        return isinstance(values, list) and len(values) == n and all(is_int(x) and 0 <= x < 2**bits for x in values)

    return ok, f"an array of {n} uint{bits} values ({{'__ndarray__': [...], 'dtype': 'uint{bits}'}})"


_SPARE_UINT32: dict[str, Any] = {"has_uint32": _int_in(0, 1), "uinteger": _int_in(0, 2**32 - 1)}
_PCG_STATE: dict[str, Any] = {
    "state": {
        "state": _int_in(0, 2**128 - 1),
        # NumPy makes the increment (inc << 1) | 1: an even one is no state it writes.
        "inc": (lambda v: is_int(v) and 0 < v < 2**128 and v % 2 == 1, "an odd int in [1, 2**128)"),
    },
    **_SPARE_UINT32,
}
# Every field of every bit generator state xpnet accepts, with the values NumPy itself can produce. NumPy does not
# range-check what it is given: an MT19937 ``pos`` past its 624 words, or a Philox ``buffer_pos`` below 0, makes the
# next draws read memory outside the state (and large draws crash the process).
_BIT_GENERATOR_STATES: dict[str, dict[str, Any]] = {
    "MT19937": {"state": {"key": _uint_array(32, 624), "pos": _int_in(0, 624)}},
    "PCG64": _PCG_STATE,
    "PCG64DXSM": _PCG_STATE,
    "Philox": {
        "state": {"counter": _uint_array(64, 4), "key": _uint_array(64, 2)},
        "buffer": _uint_array(64, 4),
        "buffer_pos": _int_in(0, 4),
        **_SPARE_UINT32,
    },
    "SFC64": {"state": {"state": _uint_array(64, 4)}, **_SPARE_UINT32},
}
# NumPy's global RandomState: an MT19937 and the spare normal deviate of its legacy gauss().
_LEGACY_STATE: dict[str, Any] = {**_BIT_GENERATOR_STATES["MT19937"], "has_gauss": _int_in(0, 1), "gauss": FINITE}


def read_rng_state(state: dict | None, file: str, key: str):
    """The sampler (a new Generator) or, for the global state, ``None`` after setting it; ``None`` for ``None``.
    Every field is checked against what NumPy itself produces before NumPy sees the state (see
    ``_BIT_GENERATOR_STATES``); ``key`` names the metadata key in messages."""
    if state is None:
        return None

    def bad(detail: str) -> ValueError:
        return ValueError(f"{file}: metadata key {key!r} is not a NumPy random state as xpnet saves it: {detail}")

    if not (isinstance(state, dict) and set(state) == {"global", "state"} and isinstance(state["state"], dict)):
        raise bad(f"it must be a dict with keys 'global' and 'state' (a dict), got {state!r:.60}")
    inner = state["state"]
    name = inner.get("bit_generator")
    kinds = ["MT19937"] if state["global"] else sorted(_BIT_GENERATOR_STATES)
    if not isinstance(name, str) or name not in kinds:
        raise ValueError(
            f"{file}: metadata key {key!r} names no NumPy bit generator xpnet accepts ({name!r:.40}); "
            f"expected one of {kinds}"
        )
    fields = _LEGACY_STATE if state["global"] else _BIT_GENERATOR_STATES[name]
    check_fields(inner, {"bit_generator": (lambda v: True, "a str"), **fields}, bad, "state/")
    try:
        return rng_from_state(state)
    except MALFORMED + (AttributeError, IndexError) as err:
        raise ValueError(f"{file}: metadata key {key!r} is not a valid NumPy random state ({err})") from None
