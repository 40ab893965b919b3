"""CS231n's ``FullyConnectedNet`` on any Array API backend.

``from xpnet.classifiers.fc_net import *`` gives the model and every function of ``layers``, ``layer_utils`` and
``fast_layers``, as CS231n's star import does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .. import layer_utils
from .._backend import check_legacy_seed
from ..layer_utils import *  # noqa: F403
from ..layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_ln_relu_backward,
    affine_ln_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
)
from ..layers import affine_backward, affine_forward, dropout_backward, dropout_forward, softmax_loss
from ._base import Model, positive_int, real_in

# CS231n's fc_net star-imports layers and layer_utils (which star-imports fast_layers) and has no __all__, so
# `from cs231n.classifiers.fc_net import *` gives every layer function; layer_utils.__all__ holds all of them.
__all__ = ["FullyConnectedNet", *layer_utils.__all__]

# normalization -> (forward, backward) of the hidden layer's sandwich; None has no gamma/beta.
_SANDWICHES: dict[str | None, tuple[Callable[..., Any], Callable[..., Any]]] = {
    None: (affine_relu_forward, affine_relu_backward),
    "batchnorm": (affine_bn_relu_forward, affine_bn_relu_backward),
    "layernorm": (affine_ln_relu_forward, affine_ln_relu_backward),
}


def _names(i: int) -> tuple[str, str, str, str]:
    """Param names of layer ``i`` (1-based): weights, biases, norm scale, norm shift."""
    return f"W{i}", f"b{i}", f"gamma{i}", f"beta{i}"


class FullyConnectedNet(Model):
    """A fully connected network with ReLUs, optional batch/layer normalization and dropout, and a softmax loss.

    Architecture: ``{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax``, with
    ``L = len(hidden_dims) + 1``. Parameters live in ``self.params`` as in CS231n: ``W1, b1, gamma1, beta1, ...``
    (no gamma/beta for the last layer). Weights are ``weight_scale * randn`` from NumPy's global random state, so
    ``np.random.seed(231)`` before construction reproduces CS231n's weights on every backend.

    Parameters
    ----------
    hidden_dims : non-empty list of positive ints, the size of each hidden layer.
    input_dim : size of the (flattened) input.
    num_classes : number of classes.
    dropout_keep_ratio : probability of keeping a unit; 1 disables dropout.
    normalization : None, ``'batchnorm'`` or ``'layernorm'``.
    reg : L2 regularization strength (on the weights only).
    weight_scale : standard deviation of the initial weights.
    dtype : floating dtype of params and computation (a name such as ``'float64'``, a NumPy dtype, or a dtype of
        the backend).
    seed : if given, dropout masks are drawn from this seed, making the network deterministic (gradient checks).
    xp : backend: a module (numpy, cupy, torch, array_api_strict), its name, or a namespace; NumPy by default.
    device : device of the params on that backend (its default if None).
    """

    def __init__(
        self,
        hidden_dims: Sequence[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout_keep_ratio: float = 1,
        normalization: str | None = None,
        reg: float = 0.0,
        weight_scale: float = 1e-2,
        dtype: Any = "float32",
        seed: int | None = None,
        *,
        xp: Any = None,
        device: Any = None,
    ):
        self._configure(
            hidden_dims=hidden_dims,
            input_dim=input_dim,
            num_classes=num_classes,
            dropout_keep_ratio=dropout_keep_ratio,
            normalization=normalization,
            reg=reg,
            weight_scale=weight_scale,
            dtype=dtype,
            seed=seed,
            xp=xp,
            device=device,
        )
        self._init_params()

    def _configure(
        self,
        *,
        hidden_dims,
        input_dim,
        num_classes,
        dropout_keep_ratio,
        normalization,
        reg,
        weight_scale,
        dtype,
        seed,
        xp,
        device,
    ) -> None:
        """Validate the arguments and set every attribute except ``params``; draws no random numbers."""
        if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, Sequence) or not hidden_dims:
            raise TypeError(f"hidden_dims must be a non-empty list of positive ints, got {hidden_dims!r}")
        self.hidden_dims = [positive_int(h, f"hidden_dims[{i}]") for i, h in enumerate(hidden_dims)]
        self.input_dim = positive_int(input_dim, "input_dim")
        self.num_classes = positive_int(num_classes, "num_classes")
        if normalization not in _SANDWICHES:
            raise ValueError(f"normalization must be None, 'batchnorm' or 'layernorm', got {normalization!r}")
        self.normalization = normalization
        self.reg = real_in(reg, "reg", low=0.0)
        self.weight_scale = real_in(weight_scale, "weight_scale", low=0.0, low_open=True)
        keep = real_in(dropout_keep_ratio, "dropout_keep_ratio", low=0.0, high=1.0, low_open=True)
        seed = check_legacy_seed(seed)
        self._set_backend(xp, device, dtype)
        self.num_layers = len(self.hidden_dims) + 1

        self.use_dropout = keep != 1
        self.dropout_param: dict = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": keep}
            if seed is not None:
                self.dropout_param["seed"] = seed
        self.dropout_keep_ratio = keep
        self.seed = seed
        # One dict per hidden layer, as in CS231n: batchnorm keeps its mode and running statistics here.
        self.bn_params: list[dict] = []
        if normalization == "batchnorm":
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        elif normalization == "layernorm":
            self.bn_params = [{} for _ in range(self.num_layers - 1)]

    def _param_specs(self) -> dict:
        dims = [self.input_dim, *self.hidden_dims, self.num_classes]
        specs: dict[str, tuple[tuple[int, ...], str]] = {}
        for i in range(1, self.num_layers + 1):
            w, b, gamma, beta = _names(i)
            specs[w] = ((dims[i - 1], dims[i]), "normal")
            specs[b] = ((dims[i],), "zeros")
            if self.normalization is not None and i < self.num_layers:
                specs[gamma] = ((dims[i],), "ones")
                specs[beta] = ((dims[i],), "zeros")
        return specs

    def config(self) -> dict:
        """Constructor arguments (JSON-able) rebuilding this network."""
        return {
            "hidden_dims": list(self.hidden_dims),
            "input_dim": self.input_dim,
            "num_classes": self.num_classes,
            "dropout_keep_ratio": self.dropout_keep_ratio,
            "normalization": self.normalization,
            "reg": self.reg,
            "weight_scale": self.weight_scale,
            "dtype": self._config_dtype(),
            "seed": self.seed,
        }

    def _state_slots(self):
        if self.normalization != "batchnorm":
            return []
        keys = ("running_mean", "running_var")
        return [(f"bn{i + 1}", p, keys, (self.hidden_dims[i],)) for i, p in enumerate(self.bn_params)]

    def _hidden_forward(self, x, i: int, bn_param: dict | None, dropout_param: dict):
        """Layer ``i``: affine - [norm] - relu - [dropout]; returns ``(out, (sandwich_cache, dropout_cache))``."""
        w, b, gamma, beta = _names(i)
        forward, _ = _SANDWICHES[self.normalization]
        args = [self.params[w], self.params[b]]
        if self.normalization is not None:
            args += [self.params[gamma], self.params[beta], bn_param]
        out, cache = forward(x, *args)
        drop_cache = None
        if self.use_dropout:
            out, drop_cache = dropout_forward(out, dropout_param)
        return out, (cache, drop_cache)

    def _hidden_backward(self, dout, cache, i: int, grads: dict):
        """Backward of :meth:`_hidden_forward`; stores the layer's param gradients in ``grads``, returns dx (None for
        the first layer: X needs no gradient, and skipping it saves a matmul as large as the forward one)."""
        sandwich_cache, drop_cache = cache
        if drop_cache is not None:
            dout = dropout_backward(dout, drop_cache)
        _, backward = _SANDWICHES[self.normalization]
        dx, *dparams = backward(dout, sandwich_cache, input_grad=i > 1)
        grads.update(zip(_names(i), dparams, strict=False))  # (dw, db), or (dw, db, dgamma, dbeta) with a norm
        return dx

    def loss(self, X, y=None):
        """Scores, or loss and gradients, for a minibatch.

        Parameters
        ----------
        X : (N, d_1, ..., d_k) inputs, ``d_1 * ... * d_k == input_dim``: an array of the model's backend, or a
            NumPy array (moved to the model's backend and device once per call).
        y : (N,) integer labels in ``[0, num_classes)`` (NumPy or the model's backend), or None.

        Returns
        -------
        If ``y`` is None (test mode: dropout off, batchnorm uses running statistics): scores, (N, num_classes).
        Otherwise ``(loss, grads)``: ``loss`` a 0-d array (no host synchronisation; ``float(loss)`` for a number)
        and ``grads`` a dict with the keys and shapes of ``self.params``.

        Raises
        ------
        TypeError, ValueError
            For an empty batch, an ``X`` or ``y`` of another backend, shape or dtype, or labels out of range (the
            range is checked where the labels are in host memory; on a GPU it would cost a sync every step).

        Inputs are checked before anything is computed, and the running statistics and layer modes computed by
        the call are written into ``bn_params`` only once it has succeeded: a call that raises leaves the model
        as it was. A refused call draws no dropout mask; a failure after the checks (out of memory, or a layer
        dict edited by hand into an invalid state) may have drawn unseeded masks from NumPy's global state.
        """
        X = self._input(X)
        if X.ndim < 2 or math.prod(X.shape[1:]) != self.input_dim:
            raise ValueError(
                f"X must have shape (N, ...) with {self.input_dim} features per row (input_dim), got {tuple(X.shape)}"
            )
        y = self._check_batch(X, y)
        mode = "test" if y is None else "train"
        # The layers write new running statistics into these shallow copies (they replace the arrays, never update
        # them in place); the copies replace the model's dicts' contents only after the whole call succeeded.
        dropout_param = {**self.dropout_param, "mode": mode} if self.use_dropout else self.dropout_param
        bn_params = [{**p, "mode": mode} if self.normalization == "batchnorm" else dict(p) for p in self.bn_params]

        out, caches = X, []
        for i in range(1, self.num_layers):
            out, cache = self._hidden_forward(out, i, bn_params[i - 1] if bn_params else None, dropout_param)
            caches.append(cache)
        w_last, b_last, _, _ = _names(self.num_layers)
        scores, last_cache = affine_forward(out, self.params[w_last], self.params[b_last])
        if y is None:
            self._commit(bn_params, dropout_param)
            return scores

        loss, dscores = softmax_loss(scores, y)
        grads: dict = {}
        dout, grads[w_last], grads[b_last] = affine_backward(dscores, last_cache)
        for i in range(self.num_layers - 1, 0, -1):
            dout = self._hidden_backward(dout, caches[i - 1], i, grads)

        if self.reg:
            for i in range(1, self.num_layers + 1):
                w = _names(i)[0]
                W = self.params[w]
                loss = loss + 0.5 * self.reg * self.xp.sum(W * W)
                grads[w] = grads[w] + self.reg * W
        self._commit(bn_params, dropout_param)
        # NumPy turns arithmetic on 0-d arrays into scalars; the contract is a 0-d array on every backend.
        return self.xp.asarray(loss), grads

    def _commit(self, bn_params: list[dict], dropout_param: dict) -> None:
        """Write a successful call's layer dicts (modes, running statistics) into the model's, as CS231n leaves
        them."""
        for target, new in zip(self.bn_params, bn_params, strict=True):
            target.update(new)
        if self.use_dropout:
            self.dropout_param["mode"] = dropout_param["mode"]
