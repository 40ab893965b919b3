"""CS231n's first-order update rules on any Array API backend.

Every rule has the signature ``next_w, config = rule(w, dw, config=None)``:

- ``w``: array of any shape, the current weights; ``dw``: array of the same shape, dtype, backend and device, the
  gradient of the loss with respect to ``w``.
- ``config``: dict of hyperparameters (``learning_rate``, ``momentum``...) and optimizer state (``velocity``,
  ``cache``, ``m``, ``v``, ``t``). Missing hyperparameters get CS231n's defaults; missing state arrays start as
  zeros on ``w``'s backend, device and dtype.

The weights are not modified: ``next_w`` is a new array. ``config`` is updated in place with the new state and
returned, as CS231n's notebooks expect (they read ``config['velocity']`` after a call).

Every call checks ``config`` before computing anything: a key the rule does not know is a ``ValueError`` listing
the keys it accepts (so a typo such as ``'learnin_rate'`` cannot silently train at the default rate);
hyperparameters must be finite Python or NumPy real scalars in their ranges; state arrays must match ``w`` in
backend, device, shape and dtype. These checks read only Python values and array metadata, never array contents,
so they cost a few microseconds and never wait for a GPU.
"""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any

from ._backend import Array, device, namespace

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam"]

# hyperparameter -> (low, low_open): every value must also be finite. Betas and decay rates weight an average
# and must stay below 1 for it to forget; epsilon guards a division and must stay above 0.
_RANGES = {
    "learning_rate": (0.0, False, math.inf),
    "momentum": (0.0, False, 1.0),
    "decay_rate": (0.0, False, 1.0),
    "beta1": (0.0, False, 1.0),
    "beta2": (0.0, False, 1.0),
    "epsilon": (0.0, True, math.inf),
}

# rule -> (CS231n's default hyperparameters, state keys)
_RULES: dict[str, tuple[dict[str, float], tuple[str, ...]]] = {
    "sgd": ({"learning_rate": 1e-2}, ()),
    "sgd_momentum": ({"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",)),
    "rmsprop": ({"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}, ("cache",)),
    "adam": ({"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}, ("m", "v", "t")),
}
_ACCEPTED = {rule: frozenset(defaults) | frozenset(state) for rule, (defaults, state) in _RULES.items()}


def _interval(key: str) -> str:
    low, low_open, high = _RANGES[key]
    return f"{'(' if low_open else '['}{low:g}, {high:g})"


def _check_hyperparameter(value: Any, key: str, name: str) -> None:
    """A ``TypeError`` / ``ValueError`` naming ``name[key]`` unless ``value`` is a finite real in its range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name}[{key!r}] must be a real number (a Python or NumPy scalar), got {value!r} of type "
            f"{type(value).__name__}"
        )
    low, low_open, high = _RANGES[key]
    # NaN fails every comparison, infinity the upper bound: both land here.
    x: Any = value  # numbers.Real declares no comparison operators for type checkers; every real has them
    if not ((low < x) if low_open else (low <= x)) or not x < high:
        raise ValueError(f"{name}[{key!r}] must be a finite number in {_interval(key)}, got {value!r}")


def _check_step_count(t: Any, name: str) -> None:
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(f"{name}['t'] (adam's step count) must be an int >= 0, got {t!r} of type {type(t).__name__}")
    if t < 0:
        raise ValueError(f"{name}['t'] (adam's step count) must be an int >= 0, got {t}")


def _did_you_mean(unknown: list, accepted) -> str:
    """`` (did you mean 'x'?)`` naming the accepted key closest to the one ``unknown`` key (``'x' for 'y', ...`` for
    several), or ``''`` when none is close: a misspelling is then one glance to fix. The Solver's keywords use it too.
    """
    close = [(key, difflib.get_close_matches(key, accepted, n=1)) for key in unknown if isinstance(key, str)]
    pairs = [(key, matches[0]) for key, matches in close if matches]
    if not pairs:
        return ""
    if len(unknown) == 1:
        return f" (did you mean {pairs[0][1]!r}?)"
    return f" (did you mean {', '.join(f'{match!r} for {key!r}' for key, match in pairs)}?)"


def _check_keys(rule: str, config: dict, name: str) -> None:
    accepted = _ACCEPTED[rule]
    if config.keys() <= accepted:
        return
    unknown = sorted((k for k in config if k not in accepted), key=str)
    hint = _did_you_mean(unknown[:1], accepted)
    raise ValueError(f"{name} has unknown key {unknown[0]!r}{hint}; {rule} accepts the keys {sorted(accepted)}")


def _check_config(rule: str, config: dict, name: str = "config") -> None:
    """Check the keys, hyperparameters and step count of a built-in ``rule``'s config, without touching arrays.

    The Solver calls this once at construction with ``name='optim_config'``, so a typo is reported before
    training; every rule calls it again (through :func:`_setup`) at each step.
    """
    _check_keys(rule, config, name)
    for key in _RULES[rule][0]:
        if key in config:
            value = config[key]
            # Fast path for the usual Python float inside its range; bounds, other types and errors take the full check.
            low, _, high = _RANGES[key]
            if type(value) is not float or not low < value < high:
                _check_hyperparameter(value, key, name)
    if "t" in config and (type(config["t"]) is not int or config["t"] < 0):
        _check_step_count(config["t"], name)


def _setup(rule: str, w, dw, config: dict | None):
    """Namespace of ``w`` and ``dw`` (checked to match), and ``config`` checked and completed with the defaults."""
    xp = namespace(w=w, dw=dw)
    if tuple(dw.shape) != tuple(w.shape):
        raise ValueError(f"dw must have the shape of w {tuple(w.shape)}, got {tuple(dw.shape)}")
    if dw.dtype != w.dtype:
        # Mixed dtypes would promote: a float32 w would silently come back float64.
        raise TypeError(f"dw must have the dtype of w ({w.dtype}), got {dw.dtype}")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    _check_config(rule, config)
    for key, default in _RULES[rule][0].items():
        config.setdefault(key, default)
    return xp, config


def _state(xp, config: dict, key: str, w):
    """``config[key]``, checked to match ``w`` in backend, device, shape and dtype; zeros like ``w`` if absent."""
    value = config.get(key)
    if value is None:
        return xp.zeros_like(w)
    name = f"config[{key!r}]"
    if type(value) is not type(w):
        namespace(w=w, **{name: value})  # a TypeError naming both backends, or a subclass of w's array type
    if device(value) != device(w):
        raise ValueError(f"{name} is on device {device(value)}, w on {device(w)}; move it to w's device")
    if tuple(value.shape) != tuple(w.shape):
        raise ValueError(f"{name} must have the shape of w {tuple(w.shape)}, got {tuple(value.shape)}")
    if value.dtype != w.dtype:
        raise TypeError(f"{name} must have the dtype of w ({w.dtype}), got {value.dtype}")
    return value


def sgd(w: Array, dw: Array, config: dict | None = None) -> tuple[Array, dict]:
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    config: ``learning_rate`` (default 1e-2, >= 0).
    """
    _, config = _setup("sgd", w, dw, config)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: Array, dw: Array, config: dict | None = None) -> tuple[Array, dict]:
    """Stochastic gradient descent with momentum: ``v = momentum * v - learning_rate * dw; w + v``.

    config: ``learning_rate`` (default 1e-2, >= 0), ``momentum`` (0.9, in [0, 1); 0 is plain SGD), ``velocity``
    (array shaped like ``w``, zeros at first). For a constant learning rate this is
    ``torch.optim.SGD(momentum=...)``, whose buffer is ``-velocity / learning_rate``.
    """
    xp, config = _setup("sgd_momentum", w, dw, config)
    v = _state(xp, config, "velocity", w)
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w: Array, dw: Array, config: dict | None = None) -> tuple[Array, dict]:
    """RMSProp: a moving average of squared gradients scales each weight's step.

    ``cache = decay_rate * cache + (1 - decay_rate) * dw**2; w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config: ``learning_rate`` (1e-2, >= 0), ``decay_rate`` (0.99, in [0, 1)), ``epsilon`` (1e-8, > 0), ``cache``
    (zeros at first).
    """
    xp, config = _setup("rmsprop", w, dw, config)
    decay = config["decay_rate"]
    cache = decay * _state(xp, config, "cache", w) + (1 - decay) * (dw * dw)
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"]), config


def adam(w: Array, dw: Array, config: dict | None = None) -> tuple[Array, dict]:
    """Adam: moving averages of the gradient and its square, with bias correction.

    The step count ``t`` is incremented before use (CS231n 2019+): ``t += 1; m = beta1 * m + (1 - beta1) * dw;
    v = beta2 * v + (1 - beta2) * dw**2; w - learning_rate * mt / (sqrt(vt) + epsilon)`` with
    ``mt = m / (1 - beta1**t)`` and ``vt = v / (1 - beta2**t)``.

    config: ``learning_rate`` (1e-3, >= 0), ``beta1`` (0.9) and ``beta2`` (0.999), both in [0, 1), ``epsilon``
    (1e-8, > 0), ``m`` and ``v`` (zeros at first), ``t`` (0 at first, a Python int >= 0).
    """
    xp, config = _setup("adam", w, dw, config)
    config.setdefault("t", 0)
    beta1, beta2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    m = beta1 * _state(xp, config, "m", w) + (1 - beta1) * dw
    v = beta2 * _state(xp, config, "v", w) + (1 - beta2) * (dw * dw)
    config.update(t=t, m=m, v=v)
    mt = m / (1 - beta1**t)
    vt = v / (1 - beta2**t)
    return w - config["learning_rate"] * mt / (xp.sqrt(vt) + config["epsilon"]), config
