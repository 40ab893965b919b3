"""CS231n assignment 2's public API, module by module: every name exists in xpnet with a compatible signature.

The table below is CS231n's own ``def`` lines (2019-2024 editions of assignment 2), so a notebook written for the
assignment finds each function under the same module and can call it with the same positional arguments and
keywords. xpnet may add parameters after CS231n's (with defaults, or keyword-only) and may give a default where
CS231n has none; where CS231n has a default, xpnet's must equal it. Star imports bring what CS231n's bring:
``classifiers/fc_net.py`` and ``classifiers/cnn.py`` star-import ``layers`` and ``layer_utils`` (which star-imports
``fast_layers``), so ``from cs231n.classifiers.fc_net import *`` gives every layer function. The 2019-2020 editions
also had ``fc_net.TwoLayerNet``, and named ``FullyConnectedNet``'s 4th argument ``dropout`` (the same keep
probability later editions call ``dropout_keep_ratio``): xpnet takes both names.

Deliberately absent (not tested here, listed in the README): ``data_utils.load_pickle``, ``load_tiny_imagenet``,
``load_models`` and ``load_imagenet_val`` (unrestricted pickle loading, and data sets of other assignments), the
Cython ``im2col_cython`` extension and the ``im2col`` module's fancy-indexing helpers.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap

import numpy as np
import pytest

from helpers import blobs

# module -> CS231n's def lines for its public functions (methods of a class are indented under "class Name:").
CS231N = {
    "layers": """
        def affine_forward(x, w, b): ...
        def affine_backward(dout, cache): ...
        def relu_forward(x): ...
        def relu_backward(dout, cache): ...
        def softmax_loss(x, y): ...
        def svm_loss(x, y): ...
        def batchnorm_forward(x, gamma, beta, bn_param): ...
        def batchnorm_backward(dout, cache): ...
        def batchnorm_backward_alt(dout, cache): ...
        def layernorm_forward(x, gamma, beta, ln_param): ...
        def layernorm_backward(dout, cache): ...
        def dropout_forward(x, dropout_param): ...
        def dropout_backward(dout, cache): ...
        def conv_forward_naive(x, w, b, conv_param): ...
        def conv_backward_naive(dout, cache): ...
        def max_pool_forward_naive(x, pool_param): ...
        def max_pool_backward_naive(dout, cache): ...
        def spatial_batchnorm_forward(x, gamma, beta, bn_param): ...
        def spatial_batchnorm_backward(dout, cache): ...
        def spatial_groupnorm_forward(x, gamma, beta, G, gn_param): ...
        def spatial_groupnorm_backward(dout, cache): ...
    """,
    "fast_layers": """
        def conv_forward_im2col(x, w, b, conv_param): ...
        def conv_backward_im2col(dout, cache): ...
        def conv_forward_strides(x, w, b, conv_param): ...
        def conv_backward_strides(dout, cache): ...
        def conv_forward_fast(x, w, b, conv_param): ...
        def conv_backward_fast(dout, cache): ...
        def max_pool_forward_fast(x, pool_param): ...
        def max_pool_backward_fast(dout, cache): ...
        def max_pool_forward_reshape(x, pool_param): ...
        def max_pool_backward_reshape(dout, cache): ...
        def max_pool_forward_im2col(x, pool_param): ...
        def max_pool_backward_im2col(dout, cache): ...
    """,
    "layer_utils": """
        def affine_relu_forward(x, w, b): ...
        def affine_relu_backward(dout, cache): ...
        def conv_relu_forward(x, w, b, conv_param): ...
        def conv_relu_backward(dout, cache): ...
        def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param): ...
        def conv_bn_relu_backward(dout, cache): ...
        def conv_relu_pool_forward(x, w, b, conv_param, pool_param): ...
        def conv_relu_pool_backward(dout, cache): ...
    """,
    "classifiers.fc_net": """
        class FullyConnectedNet:
            def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout_keep_ratio=1,
                         normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None): ...
            def loss(self, X, y=None): ...
        class TwoLayerNet:  # 2019-2020 editions
            def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3,
                         reg=0.0): ...
            def loss(self, X, y=None): ...
    """,
    "classifiers.cnn": """
        class ThreeLayerConvNet:
            def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                         num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32): ...
            def loss(self, X, y=None): ...
    """,
    "optim": """
        def sgd(w, dw, config=None): ...
        def sgd_momentum(w, dw, config=None): ...
        def rmsprop(w, dw, config=None): ...
        def adam(w, dw, config=None): ...
    """,
    "solver": """
        class Solver:
            def __init__(self, model, data, **kwargs): ...
            def _reset(self): ...
            def _step(self): ...
            def _save_checkpoint(self): ...
            def check_accuracy(self, X, y, num_samples=None, batch_size=100): ...
            def train(self): ...
    """,
    "gradient_check": """
        def eval_numerical_gradient(f, x, verbose=True, h=0.00001): ...
        def eval_numerical_gradient_array(f, x, df, h=1e-5): ...
        def eval_numerical_gradient_blobs(f, inputs, output, h=1e-5): ...
        def eval_numerical_gradient_net(net, inputs, output, h=1e-5): ...
        def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5): ...
    """,
    "data_utils": """
        def load_CIFAR_batch(filename): ...
        def load_CIFAR10(ROOT): ...
        def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000, subtract_mean=True): ...
    """,
    "vis_utils": """
        def visualize_grid(Xs, ubound=255.0, padding=1): ...
        def vis_grid(Xs): ...
        def vis_nn(rows): ...
    """,
}

# The keyword arguments CS231n's Solver takes, and the attributes notebooks read from a Solver and the models.
SOLVER_KWARGS = {
    "update_rule": "sgd",
    "optim_config": {"learning_rate": 1e-3},
    "lr_decay": 0.95,
    "batch_size": 5,
    "num_epochs": 1,
    "num_train_samples": 10,
    "num_val_samples": None,
    "checkpoint_name": None,
    "print_every": 10,
    "verbose": False,
}
SOLVER_ATTRIBUTES = [
    "model",
    "X_train",
    "y_train",
    "X_val",
    "y_val",
    "update_rule",
    "optim_config",
    "lr_decay",
    "batch_size",
    "num_epochs",
    "num_train_samples",
    "num_val_samples",
    "checkpoint_name",
    "print_every",
    "verbose",
    "epoch",
    "best_val_acc",
    "best_params",
    "loss_history",
    "train_acc_history",
    "val_acc_history",
    "optim_configs",
]
FC_ATTRIBUTES = ["normalization", "use_dropout", "reg", "num_layers", "dtype", "params", "dropout_param", "bn_params"]
CNN_ATTRIBUTES = ["params", "reg", "dtype"]
TWO_LAYER_ATTRIBUTES = ["params", "reg"]


def _reference(module: str) -> dict[str, inspect.Signature]:
    """``{'name' or 'Class.method': signature}`` of CS231n's functions in ``module``."""
    namespace: dict = {"np": np}
    exec(textwrap.dedent(CS231N[module]), namespace)
    out = {}
    for name, obj in namespace.items():
        if inspect.isfunction(obj):
            out[name] = inspect.signature(obj)
        elif inspect.isclass(obj):
            for method, fn in vars(obj).items():
                if inspect.isfunction(fn):
                    out[f"{name}.{method}"] = inspect.signature(fn)
    return out


def _entries():
    return [(module, name) for module in CS231N for name in _reference(module)]


def _resolve(module: str, name: str):
    obj = importlib.import_module(f"xpnet.{module}")
    for part in name.split("."):
        assert hasattr(obj, part), f"xpnet.{module} has no {name} (CS231n's {module} has)"
        obj = getattr(obj, part)
    return obj


def _same_default(ours, theirs) -> bool:
    if isinstance(theirs, type) and issubclass(theirs, np.generic):  # dtype=np.float32 vs dtype='float32'
        return np.dtype(ours) == np.dtype(theirs)
    if isinstance(theirs, tuple) and isinstance(ours, (tuple, list)):
        return tuple(ours) == theirs
    return type(ours) is type(theirs) and ours == theirs or (isinstance(theirs, float) and ours == theirs)


def _assert_compatible(ours: inspect.Signature, theirs: inspect.Signature, where: str):
    P = inspect.Parameter
    mine = list(ours.parameters.values())
    for i, ref in enumerate(theirs.parameters.values()):
        if ref.kind is P.VAR_KEYWORD:
            assert any(p.kind is P.VAR_KEYWORD for p in mine), f"{where}: CS231n takes **{ref.name}, xpnet does not"
            continue
        assert i < len(mine), f"{where}: CS231n's parameter {ref.name!r} is missing"
        p = mine[i]
        assert p.name == ref.name and p.kind is P.POSITIONAL_OR_KEYWORD, (
            f"{where}: positional parameter {i} must be {ref.name!r} as in CS231n, got {p.name!r} ({p.kind})"
        )
        if ref.default is not P.empty:
            assert p.default is not P.empty and _same_default(p.default, ref.default), (
                f"{where}: {ref.name} must default to {ref.default!r} as in CS231n, got {p.default!r}"
            )
    for p in mine[len(theirs.parameters) :]:
        optional = p.default is not P.empty or p.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD)
        assert optional, f"{where}: xpnet's extra parameter {p.name!r} must be optional"


@pytest.mark.parametrize(("module", "name"), _entries(), ids=[f"{m}.{n}" for m, n in _entries()])
def test_cs231n_name_exists_with_a_compatible_signature(module, name):
    obj = _resolve(module, name)
    assert callable(obj), f"xpnet.{module}.{name} is not callable"
    _assert_compatible(inspect.signature(obj), _reference(module)[name], f"xpnet.{module}.{name}")


def _layer_names() -> set[str]:
    return {name for module in ("layers", "layer_utils", "fast_layers") for name in _reference(module)}


@pytest.mark.parametrize(
    ("module", "models"), [("fc_net", ("FullyConnectedNet", "TwoLayerNet")), ("cnn", ("ThreeLayerConvNet",))]
)
def test_classifier_star_import_brings_every_layer_as_cs231n_does(module, models):
    namespace: dict = {}
    exec(f"from xpnet.classifiers.{module} import *", namespace)
    missing = sorted((_layer_names() | set(models)) - set(namespace))
    assert not missing, f"from xpnet.classifiers.{module} import * lacks {missing}"
    source = importlib.import_module(f"xpnet.classifiers.{module}")
    for model in models:
        assert namespace[model] is source.__dict__[model]


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("layers", ("layers",)),
        ("fast_layers", ("fast_layers",)),
        ("layer_utils", ("layer_utils", "layers", "fast_layers")),  # CS231n's layer_utils star-imports the others
    ],
)
def test_layer_module_star_imports(module, expected):
    namespace: dict = {}
    exec(f"from xpnet.{module} import *", namespace)
    wanted = {name for m in expected for name in _reference(m)}
    assert not sorted(wanted - set(namespace)), sorted(wanted - set(namespace))


@pytest.mark.parametrize(
    "module",
    [
        "layers",
        "layer_utils",
        "fast_layers",
        "classifiers.fc_net",
        "classifiers.cnn",
        "optim",
        "solver",
        "gradient_check",
        "data_utils",
        "vis_utils",
    ],
)
def test_every_name_in_all_exists(module):
    mod = importlib.import_module(f"xpnet.{module}")
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"xpnet.{module}.__all__ names {missing}, which it does not define"


def test_solver_takes_cs231n_keywords_and_has_its_attributes():
    from xpnet.classifiers import FullyConnectedNet
    from xpnet.solver import Solver

    data = blobs(n_train=10, n_val=5, dim=4, classes=3)
    model = FullyConnectedNet([5], input_dim=4, num_classes=3)
    solver = Solver(model, data, **SOLVER_KWARGS)
    missing = [a for a in SOLVER_ATTRIBUTES if not hasattr(solver, a)]
    assert not missing, f"Solver lacks CS231n's attributes {missing}"
    solver.train()
    assert len(solver.loss_history) == 2 and len(solver.val_acc_history) == 2


def test_fully_connected_net_takes_2019s_dropout_by_keyword_and_by_position():
    from xpnet.classifiers import FullyConnectedNet

    by_keyword = FullyConnectedNet(
        [5],
        input_dim=4,
        num_classes=3,
        dropout=0.5,
        normalization=None,
        reg=0.0,
        weight_scale=1e-2,
        dtype=np.float32,
        seed=123,
    )
    by_position = FullyConnectedNet([5], 4, 3, 0.5, None, 0.0, 1e-2, np.float32, 123)
    assert by_keyword.config() == by_position.config()
    assert by_keyword.dropout_param == by_position.dropout_param == {"mode": "train", "p": 0.5, "seed": 123}


def test_models_have_the_attributes_notebooks_read():
    from xpnet.classifiers import FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet

    fc = FullyConnectedNet([5], input_dim=4, num_classes=3, normalization="batchnorm", dropout_keep_ratio=0.5)
    cnn = ThreeLayerConvNet(input_dim=(1, 4, 4), num_filters=2, filter_size=3, hidden_dim=3)
    two_layer = TwoLayerNet(input_dim=4, hidden_dim=5, num_classes=3)
    for model, names in ((fc, FC_ATTRIBUTES), (cnn, CNN_ATTRIBUTES), (two_layer, TWO_LAYER_ATTRIBUTES)):
        missing = [a for a in names if not hasattr(model, a)]
        assert not missing, f"{type(model).__name__} lacks CS231n's attributes {missing}"
