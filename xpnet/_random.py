"""Random numbers and seed checks, drawn on the host.

The Array API standard has no random numbers, so xpnet draws them on the host with NumPy (a local ``Generator`` when
a seed is given, NumPy's global state otherwise, as CS231n code expects after ``np.random.seed(231)``) and transfers
them once through :func:`xpnet._backend.asarray`. A seeded dropout mask is therefore identical on every backend.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._backend import asarray

__all__ = [
    "host_uniform",
    "host_rand",
    "reseed_global",
    "check_legacy_seed",
    "host_normal",
    "host_rng",
    "check_seed",
    "host_integers",
    "rng_state",
    "rng_from_state",
    "random_uniform",
    "random_normal",
]


def _host_rng(seed: int | np.random.Generator | None):
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random  # the global state, so np.random.seed(...) reproduces a run as in CS231n
    return np.random.default_rng(seed)


def host_uniform(shape: tuple[int, ...], seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Uniform [0, 1) float64 NumPy array drawn from a seeded Generator, or NumPy's global state if no seed."""
    rng = _host_rng(seed)
    return rng.random(shape) if rng is not np.random else np.random.random_sample(shape)


def host_rand(shape: tuple[int, ...]) -> np.ndarray:
    """CS231n's ``np.random.rand(*shape)``: uniform [0, 1) float64 from NumPy's global state."""
    return np.asarray(np.random.random_sample(shape))


def reseed_global(seed: int) -> None:
    """``np.random.seed(seed)``, for the one place CS231n's contract includes it: a seeded ``dropout_forward``.
    ``seed`` must pass :func:`check_legacy_seed`."""
    np.random.seed(seed)


def check_legacy_seed(seed: Any, name: str = "seed") -> int | None:
    """:func:`check_seed` for seeds of NumPy's legacy ``RandomState`` (``np.random.seed``): an int in
    ``[0, 2**32 - 1]`` or None; a larger int is a ``ValueError`` naming ``name``."""
    seed = check_seed(seed, name)
    if seed is not None and seed > 2**32 - 1:
        raise ValueError(f"{name} must be an int in [0, 2**32 - 1] (as np.random.seed takes) or None, got {seed!r}")
    return seed


def host_normal(shape: tuple[int, ...], seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Standard normal float64 NumPy array drawn from a seeded Generator, or NumPy's global state if no seed."""
    rng = _host_rng(seed)
    return rng.standard_normal(shape)


def check_seed(seed: Any, name: str = "seed", *, generator: bool = False):
    """``seed`` checked once for every seeded thing in xpnet: ``None``, or an int >= 0 (Python or NumPy; bools
    refused) returned as a Python int; with ``generator=True`` a ``numpy.random.Generator`` passes through too.

    Anything else is a ``TypeError`` (wrong type) or ``ValueError`` (negative) naming ``name``, instead of the
    message NumPy's ``SeedSequence`` would give later without saying which argument it was.
    """
    if seed is None or (generator and isinstance(seed, np.random.Generator)):
        return seed
    expected = "an int >= 0" + (", a numpy.random.Generator" if generator else "") + " or None"
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be {expected}, got {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be {expected}, got {seed!r}")
    return int(seed)


def host_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator | None:
    """A NumPy ``Generator`` for ``seed`` (an int, or a Generator passed through); ``None`` stays ``None``, meaning
    NumPy's global state in :func:`host_integers`, :func:`rng_state` and the ``seed=`` of the other helpers."""
    return None if seed is None else _host_rng(seed)


def host_integers(high: int, size: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """``size`` int64 indices drawn uniformly from ``range(high)`` with replacement.

    With no seed this is ``np.random.choice(high, size)`` on NumPy's global state, the call CS231n's Solver makes,
    so minibatches after ``np.random.seed(231)`` are CS231n's.
    """
    rng = _host_rng(seed)
    return np.asarray(rng.choice(high, size), dtype=np.int64)


def _plain(obj: Any) -> Any:
    """``obj`` with NumPy arrays and scalars turned into JSON-able values (arrays become tagged lists)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.name}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _unplain(obj: Any) -> Any:
    """Inverse of :func:`_plain`."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _unplain(v) for k, v in obj.items()}
    return obj


BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")
"""The bit generators whose state a checkpoint saves and a resume restores (NumPy's own; the state's
``bit_generator`` field names one). ``_metadata`` checks every field of each on load."""


def check_resumable(rng: Any, name: str = "seed") -> None:
    """Refuse a ``Generator`` whose state a checkpoint would save but no resume could restore: one on a bit
    generator other than :data:`BIT_GENERATORS` (a third-party one). A ValueError naming ``name``; ints and None
    pass."""
    if isinstance(rng, np.random.Generator):
        kind = rng.bit_generator.state.get("bit_generator")
        if kind not in BIT_GENERATORS:
            raise ValueError(
                f"{name} must be a numpy.random.Generator on one of NumPy's bit generators {list(BIT_GENERATORS)} "
                f"for its state to go into checkpoints, got one on {kind!r}; use one of those, or no checkpoint_name"
            )


def rng_state(rng: np.random.Generator | None = None) -> dict:
    """The state of ``rng`` (NumPy's global state if ``None``) as a JSON-able dict, for checkpoints."""
    if rng is None:
        return {"global": True, "state": _plain(np.random.get_state(legacy=False))}
    return {"global": False, "state": _plain(rng.bit_generator.state)}


def rng_from_state(state: dict) -> np.random.Generator | None:
    """Undo :func:`rng_state`: a new ``Generator`` in that state, or ``None`` after setting NumPy's global state."""
    inner = _unplain(state["state"])
    if state["global"]:
        np.random.set_state(inner)
        return None
    bit_generator = getattr(np.random, inner["bit_generator"], None)
    if bit_generator is None:
        raise ValueError(f"unknown NumPy bit generator {inner['bit_generator']!r} in a saved random state")
    rng = np.random.Generator(bit_generator())
    rng.bit_generator.state = inner
    return rng


def random_uniform(shape, *, like: Any, seed: int | np.random.Generator | None = None, dtype: Any = None):
    """Uniform [0, 1) array on ``like``'s backend and device (drawn on the host, one transfer)."""
    return asarray(host_uniform(tuple(shape), seed), like=like, dtype=like.dtype if dtype is None else dtype)


def random_normal(shape, *, like: Any, seed: int | np.random.Generator | None = None, dtype: Any = None):
    """Standard normal array on ``like``'s backend and device (drawn on the host, one transfer)."""
    return asarray(host_normal(tuple(shape), seed), like=like, dtype=like.dtype if dtype is None else dtype)
