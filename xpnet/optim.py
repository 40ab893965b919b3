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
so they cost a few microseconds and never wait for a GPU. ``CONFIG_SPEC`` is the table they follow (each rule's
keys, defaults and ranges) and ``check_config(rule, config)`` runs them without arrays, as the Solver does before
training and when it reads a checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._backend import Array, device, is_array, is_tracing, max_float_dtype, namespace
from ._validation import check_int, check_keys, check_real

# The update rules (CS231n's names), then the table of their configs and its check.
__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "CONFIG_SPEC", "check_config", "RuleSpec", "Hyperparameter"]


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of an update rule: CS231n's default and the interval every value must lie in.

    Every value must also be finite.

    Parameters
    ----------
    default : float
        CS231n's default.
    low : float
        The interval's lower end.
    high : float, optional
        Its upper end, excluded; None means no upper bound.
    include_low : bool, default True
        Whether ``low`` itself is allowed: the interval is ``[low, high)``, or ``(low, high)`` without it.
    """

    default: float
    low: float
    high: float | None = None
    include_low: bool = True

    def check(self, value: Any, name: str) -> float:
        """``value`` as a float, or a ``TypeError``/``ValueError`` naming ``name``.

        Parameters
        ----------
        value : real
            The value to check.
        name : str
            Its name in the message (e.g. ``config['momentum']``).

        Returns
        -------
        float
        """
        return check_real(value, name, low=self.low, high=self.high, include_low=self.include_low, include_high=False)


@dataclass(frozen=True)
class RuleSpec:
    """What one update rule's ``config`` may hold.

    Parameters
    ----------
    hyperparameters : mapping of str to Hyperparameter
        The rule's hyperparameters by name.
    arrays : tuple of str, default ()
        Its state arrays, shaped like ``w``.
    counts : tuple of str, default ()
        Its step counts, Python ints >= 0.
    """

    hyperparameters: Mapping[str, Hyperparameter]
    arrays: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()

    @property
    def keys(self) -> frozenset[str]:
        """Every key the rule accepts in ``config``."""
        return frozenset(self.hyperparameters) | frozenset(self.arrays) | frozenset(self.counts)

    def defaults(self) -> dict[str, float]:
        """CS231n's default hyperparameters, a fresh dict."""
        return {key: h.default for key, h in self.hyperparameters.items()}


# Betas and decay rates weight an average and must stay below 1 for it to forget; epsilon guards a division and must
# stay above 0; a learning rate of 0 is allowed (it freezes the weights, which a schedule may want).
_LEARNING_RATE = Hyperparameter(1e-2, 0.0)
_EPSILON = Hyperparameter(1e-8, 0.0, include_low=False)


def _average(default: float) -> Hyperparameter:
    """A weight of a moving average, in [0, 1)."""
    return Hyperparameter(default, 0.0, 1.0)


# A plain dict for the rules' own lookups: torch.compile cannot read a mappingproxy once the trace has written to
# any dict (a graph break); CONFIG_SPEC is the read-only public face of it.
_SPECS: dict[str, RuleSpec] = dict(
    {
        "sgd": RuleSpec({"learning_rate": _LEARNING_RATE}),
        "sgd_momentum": RuleSpec({"learning_rate": _LEARNING_RATE, "momentum": _average(0.9)}, arrays=("velocity",)),
        "rmsprop": RuleSpec(
            {"learning_rate": _LEARNING_RATE, "decay_rate": _average(0.99), "epsilon": _EPSILON},
            arrays=("cache",),
        ),
        "adam": RuleSpec(
            {
                "learning_rate": Hyperparameter(1e-3, 0.0),
                "beta1": _average(0.9),
                "beta2": _average(0.999),
                "epsilon": _EPSILON,
            },
            arrays=("m", "v"),
            counts=("t",),
        ),
    }
)
CONFIG_SPEC: Mapping[str, RuleSpec] = MappingProxyType(_SPECS)
"""Built-in rule name -> :class:`RuleSpec`: the config keys each rule accepts, CS231n's defaults and the range of
each hyperparameter. :func:`check_config` checks a config against it; checkpoints are checked with it too."""

# rule -> (accepted keys, hyperparameter -> (low, high) of the fast path in check_config)
_FAST = {
    rule: (spec.keys, {k: (h.low, math.inf if h.high is None else h.high) for k, h in spec.hyperparameters.items()})
    for rule, spec in CONFIG_SPEC.items()
}


def check_config(rule: str, config: Mapping, name: str = "config") -> None:
    """Check the keys, hyperparameters and step counts of a built-in ``rule``'s config, without touching arrays.

    A key the rule does not accept is a ``ValueError`` naming the closest accepted key; a hyperparameter must be a
    finite Python or NumPy real in its range (:data:`CONFIG_SPEC`), a step count a Python int >= 0. ``name`` is the
    config's name in the messages. The Solver calls this once at construction with ``name='optim_config'``, so a
    typo is reported before training; every rule calls it again at each step (a few microseconds: the usual Python
    float inside its range takes a fast path).

    Under a compiler (``torch.compile``, ``jax.jit``) a hyperparameter or step count may also be a 0-d array being
    traced (a learning-rate schedule, Adam's ``t`` threaded through a jitted step): its value cannot be read there,
    so it is not range-checked; keys are still checked. Outside a compiler an array is refused as before.

    Parameters
    ----------
    rule : str
        The rule's name, a key of :data:`CONFIG_SPEC` (``'sgd'``, ``'sgd_momentum'``, ``'rmsprop'``, ``'adam'``).
    config : mapping
        The config to check; it is not changed.
    name : str, default 'config'
        The config's name in the messages.
    """
    if rule not in _SPECS:
        raise ValueError(f"rule must be one of {list(CONFIG_SPEC)}, got {rule!r}")
    accepted, fast = _FAST[rule]
    if not config.keys() <= accepted:
        check_keys(config, name, allowed=accepted, owner=rule)
    spec = _SPECS[rule]
    for key, (low, high) in fast.items():
        if key in config:
            value = config[key]
            if type(value) is not float or not low < value < high:
                if _traced(value):
                    continue
                spec.hyperparameters[key].check(value, f"{name}[{key!r}]")
    for key in spec.counts:
        if key in config and (type(config[key]) is not int or config[key] < 0):
            if _traced(config[key]):
                continue
            check_int(config[key], f"{name}[{key!r}] ({rule}'s step count)", low=0)


def _traced(value) -> bool:
    """True for a 0-d array being traced by a compiler, whose value cannot be read (so not checked)."""
    return is_array(value) and value.ndim == 0 and is_tracing(value)


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
    check_config(rule, config)
    for key, h in _SPECS[rule].hyperparameters.items():
        config.setdefault(key, h.default)
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

    Parameters
    ----------
    w : array
        The current weights, of any shape.
    dw : array
        The gradient of the loss with respect to ``w``: same shape, dtype, backend and device.
    config : dict, optional
        ``learning_rate`` (default 1e-2, >= 0).
        Missing hyperparameters get these defaults, missing state starts as zeros like ``w``; updated in place.

    Returns
    -------
    next_w : array
        The new weights (``w`` itself is not modified).
    config : dict
        ``config``, holding the state for the next step.
    """
    _, config = _setup("sgd", w, dw, config)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: Array, dw: Array, config: dict | None = None) -> tuple[Array, dict]:
    """Stochastic gradient descent with momentum: ``v = momentum * v - learning_rate * dw; w + v``.

    For a constant learning rate this is ``torch.optim.SGD(momentum=...)``, whose buffer is
    ``-velocity / learning_rate``.

    Parameters
    ----------
    w : array
        The current weights, of any shape.
    dw : array
        The gradient of the loss with respect to ``w``: same shape, dtype, backend and device.
    config : dict, optional
        ``learning_rate`` (default 1e-2, >= 0), ``momentum`` (0.9, in [0, 1); 0 is plain
        SGD), ``velocity`` (an array shaped like ``w``).
        Missing hyperparameters get these defaults, missing state starts as zeros like ``w``; updated in place.

    Returns
    -------
    next_w : array
        The new weights (``w`` itself is not modified).
    config : dict
        ``config``, holding the state for the next step.
    """
    xp, config = _setup("sgd_momentum", w, dw, config)
    v = _state(xp, config, "velocity", w)
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w: Array, dw: Array, config: dict | None = None) -> tuple[Array, dict]:
    """RMSProp: a moving average of squared gradients scales each weight's step.

    ``cache = decay_rate * cache + (1 - decay_rate) * dw**2; w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    Parameters
    ----------
    w : array
        The current weights, of any shape.
    dw : array
        The gradient of the loss with respect to ``w``: same shape, dtype, backend and device.
    config : dict, optional
        ``learning_rate`` (default 1e-2, >= 0), ``decay_rate`` (0.99, in [0, 1)), ``epsilon`` (1e-8, > 0),
        ``cache`` (an array shaped like ``w``).
        Missing hyperparameters get these defaults, missing state starts as zeros like ``w``; updated in place.

    Returns
    -------
    next_w : array
        The new weights (``w`` itself is not modified).
    config : dict
        ``config``, holding the state for the next step.
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

    Parameters
    ----------
    w : array
        The current weights, of any shape.
    dw : array
        The gradient of the loss with respect to ``w``: same shape, dtype, backend and device.
    config : dict, optional
        ``learning_rate`` (default 1e-3, >= 0), ``beta1`` (0.9) and ``beta2`` (0.999), both in
        [0, 1), ``epsilon`` (1e-8, > 0), ``m`` and ``v`` (arrays shaped like ``w``), ``t`` (0 at first, a Python
        int >= 0; under a compiler also a 0-d integer array, so one trace serves every step).
        Missing hyperparameters get these defaults, missing state starts as zeros like ``w``; updated in place.

    Returns
    -------
    next_w : array
        The new weights (``w`` itself is not modified).
    config : dict
        ``config``, holding the state for the next step.
    """
    xp, config = _setup("adam", w, dw, config)
    config.setdefault("t", 0)
    beta1, beta2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    m = beta1 * _state(xp, config, "m", w) + (1 - beta1) * dw
    v = beta2 * _state(xp, config, "v", w) + (1 - beta2) * (dw * dw)
    config.update(t=t, m=m, v=v)
    if is_array(t):
        # A traced step count: the bias corrections are computed in the widest float, as the Python numbers of an
        # eager step are (in float32, 1 - 0.999**1 would be off by 1e-5), then used in w's dtype.
        t = xp.astype(t, max_float_dtype(xp, device(w)))
        c1, c2 = (xp.astype(1 - beta**t, w.dtype) for beta in (beta1, beta2))
    else:
        c1, c2 = 1 - beta1**t, 1 - beta2**t
    mt = m / c1
    vt = v / c2
    return w - config["learning_rate"] * mt / (xp.sqrt(vt) + config["epsilon"]), config
