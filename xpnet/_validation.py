"""The one place xpnet checks Python scalars, flags and dicts of settings.

Shaped after scikit-learn's ``utils.validation.check_scalar(x, name, target_type, *, min_val, max_val,
include_boundaries)``: the value first, then the name the error will use, then keyword-only bounds. Every check
returns the value converted to a plain Python type (so a NumPy integer becomes an ``int``), or raises a
``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, out of range) whose message names the argument,
says what was expected and shows what was got::

    dropout_param['p'] must be a finite number in (0, 1], got 1.5
    conv_param['stride'] must be an int >= 1, got 0
    bn_param has unknown key 'momentun' (did you mean 'momentum'?); accepted keys: ['eps', 'mode', ...]

Bools are refused wherever a number is expected (``True`` is an ``int`` to Python, never to a user who typed it).
These checks read Python values only, never array contents, so none costs a device synchronisation. This module
imports nothing from xpnet: any floor may use it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal, overload

__all__ = ["check_int", "check_real", "check_flag", "check_progress", "check_keys", "did_you_mean"]


def _bounds(low: float | None, high: float | None, include_low: bool, include_high: bool) -> str:
    """`` >= 0``, `` in (0, 1]``, `` <= 9`` or ``''``: the range part of a message."""
    if low is not None and high is not None:
        return f" in {'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
    if low is not None:
        return f" {'>=' if include_low else '>'} {low:g}"
    if high is not None:
        return f" {'<=' if include_high else '<'} {high:g}"
    return ""


@overload
def check_int(
    value: Any, name: str, *, low: int | None = None, high: int | None = None, allow_none: Literal[False] = False
) -> int: ...
@overload
def check_int(
    value: Any, name: str, *, low: int | None = None, high: int | None = None, allow_none: bool
) -> int | None: ...
def check_int(
    value: Any, name: str, *, low: int | None = None, high: int | None = None, allow_none: bool = False
) -> int | None:
    """``value`` as a Python ``int`` in ``[low, high]`` (a missing bound is no bound); with ``allow_none``, ``None``
    passes too (it then means "all" or "automatic" to the caller, and the message offers it).

    Python and NumPy integers pass; bools, floats (even ``2.0``) and strings are a
    ``TypeError``, an int out of range a ``ValueError``: ``"{name} must be an int >= 1, got 0"``.
    """
    if allow_none and value is None:
        return None
    expected = f"{name} must be an int{_bounds(low, high, True, True)}{' or None' if allow_none else ''}"
    # NumPy integers register as numbers.Integral, NumPy bools do not; a 0-d array is not an int here (reading a
    # torch CUDA scalar would wait for the device).
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{expected}, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{expected}, got {value}")
    return value


@overload
def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    include_low: bool = True,
    include_high: bool = True,
    finite: bool = True,
    allow_none: Literal[False] = False,
) -> float: ...
@overload
def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    include_low: bool = True,
    include_high: bool = True,
    finite: bool = True,
    allow_none: bool,
) -> float | None: ...
def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    include_low: bool = True,
    include_high: bool = True,
    finite: bool = True,
    allow_none: bool = False,
) -> float | None:
    """``value`` as a Python ``float`` in the interval from ``low`` to ``high`` (a missing bound is no bound;
    ``include_low``/``include_high`` say whether the bounds themselves pass); with ``allow_none``, ``None`` passes.

    Python and NumPy real scalars pass; bools, strings, complex numbers and arrays are a ``TypeError``. NaN is
    always a ``ValueError``, and so are infinities unless ``finite=False``:
    ``"{name} must be a finite number in (0, 1], got 1.5"``.
    """
    if allow_none and value is None:
        return None
    kind = "a finite number" if finite else "a number"
    none = " or None" if allow_none else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number{none}, got {value!r}")
    x = float(value)
    # NaN fails every comparison, so it lands here with any bounds; infinity too where finite=True.
    inside = (
        not math.isnan(x)
        and (math.isfinite(x) or not finite)
        and (low is None or (low <= x if include_low else low < x))
        and (high is None or (x <= high if include_high else x < high))
    )
    if not inside:
        raise ValueError(f"{name} must be {kind}{_bounds(low, high, include_low, include_high)}{none}, got {value}")
    return x


def check_flag(value: Any, name: str, *, allow_none: bool = False) -> bool | None:
    """``value`` if it is ``True`` or ``False`` (or ``None`` with ``allow_none``, meaning "decide automatically");
    anything else (0, 1, 'yes', a NumPy bool) is a ``TypeError``: a truthy stand-in would read as a silent choice."""
    if isinstance(value, bool) or (allow_none and value is None):
        return value
    expected = "True, False or None (auto)" if allow_none else "True or False"
    raise TypeError(f"{name} must be {expected}, got {value!r}")


def check_progress(value: Any, name: str = "progress") -> bool | None:
    """A progress-bar setting: ``True``, ``False``, or ``None`` for automatic (a bar only on a terminal)."""
    return check_flag(value, name, allow_none=True)


def did_you_mean(unknown: Iterable[Any], accepted: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the accepted key closest to the one ``unknown`` key (``'x' for 'y', ...`` for
    several), or ``''`` when none is close: a misspelling is then one glance to fix."""
    unknown = list(unknown)
    accepted = list(accepted)
    close = [(key, difflib.get_close_matches(key, accepted, n=1)) for key in unknown if isinstance(key, str)]
    pairs = [(key, matches[0]) for key, matches in close if matches]
    if not pairs:
        return ""
    if len(unknown) == 1:
        return f" (did you mean {pairs[0][1]!r}?)"
    return f" (did you mean {', '.join(f'{match!r} for {key!r}' for key, match in pairs)}?)"


def check_keys(
    mapping: Any,
    name: str,
    *,
    required: Collection[str] = (),
    allowed: Collection[str] | None = None,
    owner: str | None = None,
) -> None:
    """Refuse a ``mapping`` that is not a ``Mapping`` (``TypeError``), lacks a ``required`` key, or has a key outside
    ``allowed`` (``ValueError``; ``None`` allows any key). The required keys are allowed too.

    An unknown key is most likely a misspelling: the message names the first one (by ``str`` order), the closest
    accepted key, and every accepted key; ``owner`` (e.g. ``"adam"``) says who accepts them.
    """
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a dict, got {type(mapping).__name__}")
    if allowed is not None:
        accepted = {*allowed, *required}
        if not mapping.keys() <= accepted:
            unknown = sorted((k for k in mapping if k not in accepted), key=str)
            hint = did_you_mean(unknown[:1], accepted)
            whose = f"{owner} accepts the keys" if owner else "accepted keys:"
            raise ValueError(f"{name} has unknown key {unknown[0]!r}{hint}; {whose} {sorted(accepted)}")
    missing = sorted(k for k in required if k not in mapping)
    if missing:
        raise ValueError(
            f"{name} is missing key(s) {missing}; {owner + ' needs' if owner else 'required keys:'} {sorted(required)}"
        )
