"""CS231n's first-order update rules on any Array API backend.

Every rule has the signature ``next_w, config = rule(w, dw, config=None)``:

- ``w``: array of any shape, the current weights; ``dw``: array of the same shape and backend, the gradient of the
  loss with respect to ``w``.
- ``config``: dict of hyperparameters (``learning_rate``, ``momentum``...) and optimizer state (``velocity``,
  ``cache``, ``m``, ``v``, ``t``). Missing hyperparameters get CS231n's defaults; missing state arrays start as
  zeros on ``w``'s backend, device and dtype.

The weights are not modified: ``next_w`` is a new array. ``config`` is updated in place with the new state and
returned, as CS231n's notebooks expect (they read ``config['velocity']`` after a call).
"""

from __future__ import annotations

from ._backend import namespace

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam"]


def _setup(w, dw, config: dict | None):
    """Namespace of ``w`` and ``dw`` (checked to match in backend and shape) and the config dict to fill."""
    xp = namespace(w, dw)
    if tuple(dw.shape) != tuple(w.shape):
        raise ValueError(f"dw must have the shape of w {tuple(w.shape)}, got {tuple(dw.shape)}")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    return xp, config


def _state(xp, config: dict, key: str, w):
    """``config[key]``, or zeros like ``w`` when the rule runs for the first time."""
    value = config.get(key)
    if value is None:
        return xp.zeros_like(w)
    if tuple(value.shape) != tuple(w.shape):
        raise ValueError(f"config[{key!r}] must have the shape of w {tuple(w.shape)}, got {tuple(value.shape)}")
    return value


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    config: ``learning_rate`` (default 1e-2).
    """
    _, config = _setup(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w, dw, config=None):
    """Stochastic gradient descent with momentum: ``v = momentum * v - learning_rate * dw; w + v``.

    config: ``learning_rate`` (default 1e-2), ``momentum`` (0.9; 0 is plain SGD), ``velocity`` (array shaped like
    ``w``, zeros at first). For a constant learning rate this is ``torch.optim.SGD(momentum=...)``, whose buffer
    is ``-velocity / learning_rate``.
    """
    xp, config = _setup(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = _state(xp, config, "velocity", w)
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w, dw, config=None):
    """RMSProp: a moving average of squared gradients scales each weight's step.

    ``cache = decay_rate * cache + (1 - decay_rate) * dw**2; w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config: ``learning_rate`` (1e-2), ``decay_rate`` (0.99), ``epsilon`` (1e-8), ``cache`` (zeros at first).
    """
    xp, config = _setup(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    decay = config["decay_rate"]
    cache = decay * _state(xp, config, "cache", w) + (1 - decay) * (dw * dw)
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"]), config


def adam(w, dw, config=None):
    """Adam: moving averages of the gradient and its square, with bias correction.

    The step count ``t`` is incremented before use (CS231n 2019+): ``t += 1; m = beta1 * m + (1 - beta1) * dw;
    v = beta2 * v + (1 - beta2) * dw**2; w - learning_rate * mt / (sqrt(vt) + epsilon)`` with
    ``mt = m / (1 - beta1**t)`` and ``vt = v / (1 - beta2**t)``.

    config: ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999), ``epsilon`` (1e-8), ``m`` and ``v``
    (zeros at first), ``t`` (0 at first, a Python int).
    """
    xp, config = _setup(w, dw, config)
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("t", 0)
    beta1, beta2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    m = beta1 * _state(xp, config, "m", w) + (1 - beta1) * dw
    v = beta2 * _state(xp, config, "v", w) + (1 - beta2) * (dw * dw)
    config.update(t=t, m=m, v=v)
    mt = m / (1 - beta1**t)
    vt = v / (1 - beta2**t)
    return w - config["learning_rate"] * mt / (xp.sqrt(vt) + config["epsilon"]), config
