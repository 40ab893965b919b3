"""CS231n's ``FullyConnectedNet`` (and the 2019 edition's ``TwoLayerNet``) on any Array API backend.

``from xpnet.classifiers.fc_net import *`` gives the models and every function of ``layers``, ``layer_utils`` and
``fast_layers``, as CS231n's star import does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .. import layer_utils
from .._backend import asarray
from .._random import check_legacy_seed, host_rand, reseed_global
from .._validation import check_int, check_real
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
from ._base import Model

# CS231n's fc_net star-imports layers and layer_utils (which star-imports fast_layers) and has no __all__, so
# `from cs231n.classifiers.fc_net import *` gives every layer function; layer_utils.__all__ holds all of them.
__all__ = ["FullyConnectedNet", "TwoLayerNet", *layer_utils.__all__]

# normalization -> (forward, backward) of the hidden layer's sandwich; None has no gamma/beta.
_SANDWICHES: dict[str | None, tuple[Callable[..., Any], Callable[..., Any]]] = {
    None: (affine_relu_forward, affine_relu_backward),
    "batchnorm": (affine_bn_relu_forward, affine_bn_relu_backward),
    "layernorm": (affine_ln_relu_forward, affine_ln_relu_backward),
}


def _names(i: int) -> tuple[str, str, str, str]:
    """Param names of layer ``i`` (1-based): weights, biases, norm scale, norm shift."""
    return f"W{i}", f"b{i}", f"gamma{i}", f"beta{i}"


def _param_specs(dims: Sequence[int], normalization: str | None) -> dict[str, tuple[tuple[int, ...], str]]:
    """Specs of affine layers ``dims[0] -> dims[1] -> ... -> dims[-1]`` in CS231n's order (gamma/beta after each
    hidden layer's weights when ``normalization`` is set), for :meth:`Model._init_params`."""
    specs: dict[str, tuple[tuple[int, ...], str]] = {}
    for i in range(1, len(dims)):
        w, b, gamma, beta = _names(i)
        specs[w] = ((dims[i - 1], dims[i]), "normal")
        specs[b] = ((dims[i],), "zeros")
        if normalization is not None and i < len(dims) - 1:
            specs[gamma] = ((dims[i],), "ones")
            specs[beta] = ((dims[i],), "zeros")
    return specs


def _flat_input(model: FullyConnectedNet | TwoLayerNet, X):
    """``X`` on the model's backend, device and dtype, checked to hold ``model.input_dim`` features per row."""
    X = model._input(X)
    if X.ndim < 2 or math.prod(X.shape[1:]) != model.input_dim:
        raise ValueError(
            f"X must have shape (N, ...) with {model.input_dim} features per row (input_dim), got {tuple(X.shape)}"
        )
    return X


def _regularized(model: FullyConnectedNet | TwoLayerNet, loss, grads: dict, weights: Sequence[str]):
    """``loss + 0.5 * reg * sum(W * W)`` over the ``weights`` as a 0-d array; adds ``reg * W`` to their ``grads``."""
    if model.reg:
        for w in weights:
            W = model.params[w]
            loss = loss + 0.5 * model.reg * model.xp.sum(W * W)
            grads[w] = grads[w] + model.reg * W
    # NumPy turns arithmetic on 0-d arrays into scalars; the contract is a 0-d array on every backend.
    return model.xp.asarray(loss)


class FullyConnectedNet(Model):
    """A fully connected network with ReLUs, optional batch/layer normalization and dropout, and a softmax loss.

    Architecture: ``{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax``, with
    ``L = len(hidden_dims) + 1``. Parameters live in ``self.params`` as in CS231n: ``W1, b1, gamma1, beta1, ...``
    (no gamma/beta for the last layer). Weights are ``weight_scale * randn`` from NumPy's global random state, so
    ``np.random.seed(231)`` before construction reproduces CS231n's weights on every backend.

    Parameters
    ----------
    hidden_dims : list of int
        The size of each hidden layer (not empty, each > 0).
    input_dim : int, default 3072
        Size of the (flattened) input.
    num_classes : int, default 10
        Number of classes.
    dropout_keep_ratio : float, default 1
        Probability of keeping a unit; 1 disables dropout.
    normalization : {None, 'batchnorm', 'layernorm'}, default None
        The normalization after each hidden affine layer, before its ReLU.
    reg : float, default 0.0
        L2 regularization strength (on the weights only).
    weight_scale : float, default 1e-2
        Standard deviation of the initial weights.
    dtype : str or dtype, default 'float32'
        Floating dtype of params and computation (a name such as ``'float64'``, a NumPy dtype, or a dtype of the
        backend).
    seed : int, optional
        If given, dropout masks are drawn from this seed, making the network deterministic (gradient checks). As in
        CS231n, each dropout layer then reseeds NumPy's global state with it at every call, so a Solver training such a
        model draws the same minibatch at every step: seed dropout for checks, not for training.
    dropout : float, optional
        The keep probability under the 2019 edition's name (its Dropout notebook passes ``dropout=0.5``): the same
        setting as ``dropout_keep_ratio``, which takes its place as the 4th positional argument. Give one of the two;
        ``dropout_keep_ratio`` other than 1 with ``dropout`` is a ``TypeError``. Model files record
        ``dropout_keep_ratio``.
    xp : module, str or namespace, optional
        The backend: a module (numpy, cupy, torch, array_api_strict), its name, or a namespace; NumPy by default.
    device : device, optional
        Device of the params on that backend (its default if None).
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
        dropout: float | None = None,
        xp: Any = None,
        device: Any = None,
    ):
        if dropout is not None:
            # 1 is dropout_keep_ratio's default: with it, only dropout was given (the 2019 notebooks' spelling).
            if dropout_keep_ratio != 1:
                raise TypeError(
                    "FullyConnectedNet got both dropout (the 2019 edition's name) and dropout_keep_ratio (later "
                    f"editions'), which name one setting, the keep probability: got dropout={dropout!r} and "
                    f"dropout_keep_ratio={dropout_keep_ratio!r}; give one of them"
                )
            dropout_keep_ratio = check_real(dropout, "dropout", low=0.0, high=1.0, include_low=False)
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
        self.hidden_dims = [check_int(h, f"hidden_dims[{i}]", low=1) for i, h in enumerate(hidden_dims)]
        self.input_dim = check_int(input_dim, "input_dim", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        if normalization not in _SANDWICHES:
            raise ValueError(f"normalization must be None, 'batchnorm' or 'layernorm', got {normalization!r}")
        self.normalization = normalization
        self.reg = check_real(reg, "reg", low=0.0)
        self.weight_scale = check_real(weight_scale, "weight_scale", low=0.0, include_low=False)
        keep = check_real(dropout_keep_ratio, "dropout_keep_ratio", low=0.0, high=1.0, include_low=False)
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
        return _param_specs([self.input_dim, *self.hidden_dims, self.num_classes], self.normalization)

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

    def loss(self, X, y=None, *, dropout_masks=None):
        """Scores, or loss and gradients, for a minibatch.

        Parameters
        ----------
        X : array of shape (N, d_1, ..., d_k)
            Inputs with ``d_1 * ... * d_k == input_dim``: an array of the model's backend, or a NumPy array (moved
            to the model's backend and device once per call).
        y : array of shape (N,), optional
            Integer labels in ``[0, num_classes)`` (NumPy or the model's backend); None for test mode.
        dropout_masks : sequence of arrays, optional
            With dropout, in train mode: one boolean mask per hidden layer, of shape (N, hidden_dims[i]), True
            where a unit is kept, used instead of masks drawn from NumPy's global state (see ``dropout_forward``'s
            ``'mask'``). Required under a compiler (``torch.compile``, ``jax.jit``), where a drawn mask would be a
            constant of the trace; :meth:`draw_dropout_masks` draws the ones an eager call would.

        Returns
        -------
        scores : array of shape (N, num_classes)
            When ``y`` is None (test mode: dropout off, batchnorm uses running statistics).
        loss, grads : 0-d array and dict
            Otherwise: ``loss`` a 0-d array (no host synchronisation; ``float(loss)`` for a number) and ``grads`` a
            dict with the keys and shapes of ``self.params``.

        Raises
        ------
        TypeError, ValueError
            For an empty batch, an ``X`` or ``y`` of another backend, shape or dtype, or labels out of range (the
            range is checked where the labels are in host memory; on a GPU it would cost a sync every step).

        Notes
        -----
        Inputs are checked before anything is computed, and the running statistics and layer modes computed by
        the call are written into ``bn_params`` only once it has succeeded: a call that raises leaves the model
        as it was. A refused call draws no dropout mask; a failure after the checks (out of memory, or a layer
        dict edited by hand into an invalid state) may have drawn unseeded masks from NumPy's global state.
        """
        X = _flat_input(self, X)
        y = self._check_batch(X, y)
        mode = "test" if y is None else "train"
        # The layers write new running statistics into these shallow copies (they replace the arrays, never update
        # them in place); the copies replace the model's dicts' contents only after the whole call succeeded.
        dropout_param = {**self.dropout_param, "mode": mode} if self.use_dropout else self.dropout_param
        bn_params = [{**p, "mode": mode} if self.normalization == "batchnorm" else dict(p) for p in self.bn_params]

        if dropout_masks is not None and len(dropout_masks) != self.num_layers - 1:
            raise ValueError(
                f"dropout_masks must hold one mask per hidden layer ({self.num_layers - 1}), got {len(dropout_masks)}"
            )
        out, caches = X, []
        for i in range(1, self.num_layers):
            layer_dropout = dropout_param
            if dropout_masks is not None and self.use_dropout and mode == "train":
                layer_dropout = {**dropout_param, "mask": dropout_masks[i - 1]}
            out, cache = self._hidden_forward(out, i, bn_params[i - 1] if bn_params else None, layer_dropout)
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

        loss = _regularized(self, loss, grads, [_names(i)[0] for i in range(1, self.num_layers + 1)])
        self._commit(bn_params, dropout_param)
        return loss, grads

    def draw_dropout_masks(self, N: int) -> list | None:
        """The dropout masks a train-mode :meth:`loss` call on N samples would draw, drawn now (from NumPy's global
        state, reseeded first as the layers would when the model has a dropout seed), on the model's backend and
        device; None without dropout. For ``loss(X, y, dropout_masks=...)`` under a compiler: the same masks, so
        the same numbers, as the eager call.

        Parameters
        ----------
        N : int
            The batch size.

        Returns
        -------
        list of arrays or None
            One boolean (N, hidden_dims[i]) array per hidden layer.
        """
        if not self.use_dropout:
            return None
        p, seed = self.dropout_param["p"], self.dropout_param.get("seed")
        masks = []
        for h in self.hidden_dims:
            if seed is not None:
                reseed_global(seed)
            masks.append(asarray(host_rand((N, h)) < p, xp=self.xp, device=self.device))
        return masks

    def _commit(self, bn_params: list[dict], dropout_param: dict) -> None:
        """Write a successful call's layer dicts (modes, running statistics) into the model's, as CS231n leaves
        them."""
        for target, new in zip(self.bn_params, bn_params, strict=True):
            target.update(new)
        if self.use_dropout:
            self.dropout_param["mode"] = dropout_param["mode"]


class TwoLayerNet(Model):
    """CS231n's 2019 ``TwoLayerNet``: ``affine - relu - affine - softmax``, with L2 regularization.

    The 2019 edition's FullyConnectedNets notebook builds it with ``TwoLayerNet(input_dim=D, hidden_dim=H,
    num_classes=C, weight_scale=std)``, sets ``model.params[...]`` and ``model.reg`` by hand, and trains it with the
    ``Solver``; later editions moved it to assignment 1. It is ``FullyConnectedNet([hidden_dim])`` with the 2019
    constructor and float64 params. Parameters ``W1`` (D, H), ``b1`` (H,), ``W2`` (H, C), ``b2`` (C,); the weights
    are ``weight_scale * randn`` from NumPy's global random state, ``W1`` then ``W2`` (so ``np.random.seed(231)``
    reproduces CS231n's weights on every backend), the biases zeros.

    Parameters
    ----------
    input_dim : int, default 3072
        D, size of the (flattened) input.
    hidden_dim : int, default 100
        H, units of the hidden layer.
    num_classes : int, default 10
        C, number of classes.
    weight_scale : float, default 1e-3
        Standard deviation of the initial weights.
    reg : float, default 0.0
        L2 regularization strength (on the weights only); the loss adds ``0.5 * reg * (sum(W1**2) + sum(W2**2))``.
    dtype : str or dtype, default 'float64'
        Floating dtype of params and computation (a name such as ``'float32'``, a NumPy dtype, or a dtype of the
        backend). float64, as CS231n's ``np.random.randn`` weights were, so the notebook's numbers match.
    xp : module, str or namespace, optional
        The backend: a module (numpy, cupy, torch, array_api_strict), its name, or a namespace; NumPy by default.
    device : device, optional
        Device of the params on that backend (its default if None).
    """

    def __init__(
        self,
        input_dim: int = 3 * 32 * 32,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        *,
        dtype: Any = "float64",
        xp: Any = None,
        device: Any = None,
    ):
        self._configure(
            input_dim=input_dim,
            hidden_dim=hidden_dim,
            num_classes=num_classes,
            weight_scale=weight_scale,
            reg=reg,
            dtype=dtype,
            xp=xp,
            device=device,
        )
        self._init_params()

    def _configure(self, *, input_dim, hidden_dim, num_classes, weight_scale, reg, dtype, xp, device) -> None:
        """Validate the arguments and set every attribute except ``params``; draws no random numbers."""
        self.input_dim = check_int(input_dim, "input_dim", low=1)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.weight_scale = check_real(weight_scale, "weight_scale", low=0.0, include_low=False)
        self.reg = check_real(reg, "reg", low=0.0)
        self._set_backend(xp, device, dtype)

    def _param_specs(self) -> dict:
        return _param_specs([self.input_dim, self.hidden_dim, self.num_classes], None)

    def config(self) -> dict:
        """Constructor arguments (JSON-able) rebuilding this network."""
        return {
            "input_dim": self.input_dim,
            "hidden_dim": self.hidden_dim,
            "num_classes": self.num_classes,
            "weight_scale": self.weight_scale,
            "reg": self.reg,
            "dtype": self._config_dtype(),
        }

    def loss(self, X, y=None):
        """Scores, or loss and gradients, for a minibatch.

        Parameters
        ----------
        X : array of shape (N, d_1, ..., d_k)
            Inputs with ``d_1 * ... * d_k == input_dim``: an array of the model's backend, or a NumPy array (moved
            to the model's backend and device once per call).
        y : array of shape (N,), optional
            Integer labels in ``[0, num_classes)`` (NumPy or the model's backend); None for test mode.

        Returns
        -------
        scores : array of shape (N, num_classes)
            When ``y`` is None.
        loss, grads : 0-d array and dict
            Otherwise: ``loss`` a 0-d array (no host synchronisation; ``float(loss)`` for a number) and ``grads`` a
            dict with the keys and shapes of ``self.params``.

        Raises
        ------
        TypeError, ValueError
            For an empty batch, an ``X`` or ``y`` of another backend, shape or dtype, or labels out of range (the
            range is checked where the labels are in host memory; on a GPU it would cost a sync every step). All
            checks run before anything is computed; the model keeps no state a call could change.
        """
        X = _flat_input(self, X)
        y = self._check_batch(X, y)
        p = self.params
        hidden, hidden_cache = affine_relu_forward(X, p["W1"], p["b1"])
        scores, scores_cache = affine_forward(hidden, p["W2"], p["b2"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        grads: dict = {}
        dhidden, grads["W2"], grads["b2"] = affine_backward(dscores, scores_cache)
        # X needs no gradient: skipping it saves a matmul as large as the forward one.
        _, grads["W1"], grads["b1"] = affine_relu_backward(dhidden, hidden_cache, input_grad=False)
        return _regularized(self, loss, grads, ["W1", "W2"]), grads
