"""CS231n's ``ThreeLayerConvNet`` on any Array API backend.

``from xpnet.classifiers.cnn import *`` gives the model and every function of ``layers``, ``fast_layers`` and
``layer_utils``, as CS231n's star import does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import layer_utils
from .._validation import check_int, check_real
from ..layer_utils import *  # noqa: F403
from ..layer_utils import affine_relu_backward, affine_relu_forward, conv_relu_pool_backward, conv_relu_pool_forward
from ..layers import affine_backward, affine_forward, softmax_loss
from ._base import Model

# CS231n's cnn star-imports layers, fast_layers and layer_utils and has no __all__: layer_utils.__all__ holds all
# of their names.
__all__ = ["ThreeLayerConvNet", *layer_utils.__all__]

_POOL_PARAM = {"pool_height": 2, "pool_width": 2, "stride": 2}


class ThreeLayerConvNet(Model):
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax.

    The convolution keeps the spatial size ('same' padding: stride 1, ``pad = (filter_size - 1) // 2``), and the
    pool halves it (flooring odd sizes), so any ``(C, H, W)`` with ``H, W >= 2`` works. Parameters ``W1, b1`` (conv),
    ``W2, b2`` (hidden affine), ``W3, b3`` (output affine); weights are ``weight_scale * randn`` from NumPy's global
    random state in that order, as in CS231n.

    Parameters
    ----------
    input_dim : tuple of int, default (3, 32, 32)
        (C, H, W) of one input.
    num_filters : int, default 32
        Number of convolution filters F.
    filter_size : int, default 7
        Odd width and height of each filter.
    hidden_dim : int, default 100
        Units of the hidden affine layer.
    num_classes : int, default 10
        Number of classes.
    weight_scale : float, default 1e-3
        Standard deviation of the initial weights.
    reg : float, default 0.0
        L2 regularization strength (on the weights only).
    dtype : str or dtype, default 'float32'
        Floating dtype of params and computation (a name, a NumPy dtype, or a dtype of the backend).
    xp : module, str or namespace, optional
        The backend: a module (numpy, cupy, torch, array_api_strict), its name, or a namespace; NumPy by default.
    device : device, optional
        Device of the params on that backend (its default if None).
    """

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (3, 32, 32),
        num_filters: int = 32,
        filter_size: int = 7,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype: Any = "float32",
        *,
        xp: Any = None,
        device: Any = None,
    ):
        self._configure(
            input_dim=input_dim,
            num_filters=num_filters,
            filter_size=filter_size,
            hidden_dim=hidden_dim,
            num_classes=num_classes,
            weight_scale=weight_scale,
            reg=reg,
            dtype=dtype,
            xp=xp,
            device=device,
        )
        self._init_params()

    def _configure(
        self, *, input_dim, num_filters, filter_size, hidden_dim, num_classes, weight_scale, reg, dtype, xp, device
    ) -> None:
        """Validate the arguments and set every attribute except ``params``; draws no random numbers."""
        if isinstance(input_dim, (str, bytes)) or not isinstance(input_dim, Sequence) or len(input_dim) != 3:
            raise TypeError(f"input_dim must be a (C, H, W) tuple of positive ints, got {input_dim!r}")
        self.input_dim = tuple(check_int(d, f"input_dim[{i}]", low=1) for i, d in enumerate(input_dim))
        _, H, W = self.input_dim
        if H < 2 or W < 2:
            raise ValueError(f"input_dim must have H >= 2 and W >= 2 for the 2x2 max pool, got {self.input_dim}")
        self.num_filters = check_int(num_filters, "num_filters", low=1)
        self.filter_size = check_int(filter_size, "filter_size", low=1)
        if self.filter_size % 2 == 0:
            raise ValueError(f"filter_size must be odd so that 'same' padding keeps H and W, got {filter_size}")
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.weight_scale = check_real(weight_scale, "weight_scale", low=0.0, include_low=False)
        self.reg = check_real(reg, "reg", low=0.0)
        self._set_backend(xp, device, dtype)

    def _param_specs(self) -> dict:
        C, H, W = self.input_dim
        F, HH = self.num_filters, self.filter_size
        return {
            "W1": ((F, C, HH, HH), "normal"),
            "b1": ((F,), "zeros"),
            "W2": ((F * (H // 2) * (W // 2), self.hidden_dim), "normal"),
            "b2": ((self.hidden_dim,), "zeros"),
            "W3": ((self.hidden_dim, self.num_classes), "normal"),
            "b3": ((self.num_classes,), "zeros"),
        }

    def config(self) -> dict:
        """Constructor arguments (JSON-able) rebuilding this network."""
        return {
            "input_dim": list(self.input_dim),
            "num_filters": self.num_filters,
            "filter_size": self.filter_size,
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
        X : array of shape (N, C, H, W)
            Inputs with ``(C, H, W) == input_dim``: an array of the model's backend, or a NumPy array (moved to the
            model's backend and device once per call).
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
        X = self._input(X)
        if X.ndim != 4 or tuple(X.shape[1:]) != self.input_dim:
            raise ValueError(
                f"X must have shape (N, C, H, W) with (C, H, W) == input_dim {self.input_dim}, got {tuple(X.shape)}"
            )
        y = self._check_batch(X, y)
        p = self.params
        conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}

        pooled, pool_cache = conv_relu_pool_forward(X, p["W1"], p["b1"], conv_param, dict(_POOL_PARAM))
        hidden, hidden_cache = affine_relu_forward(pooled, p["W2"], p["b2"])
        scores, out_cache = affine_forward(hidden, p["W3"], p["b3"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        grads = {}
        dhidden, grads["W3"], grads["b3"] = affine_backward(dscores, out_cache)
        dpooled, grads["W2"], grads["b2"] = affine_relu_backward(dhidden, hidden_cache)
        # X needs no gradient: skipping it saves a matmul and the col2im scatter, as torch's autograd does.
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dpooled, pool_cache, input_grad=False)

        if self.reg:
            for w in ("W1", "W2", "W3"):
                loss = loss + 0.5 * self.reg * self.xp.sum(p[w] * p[w])
                grads[w] = grads[w] + self.reg * p[w]
        # NumPy turns arithmetic on 0-d arrays into scalars; the contract is a 0-d array on every backend.
        return self.xp.asarray(loss), grads
