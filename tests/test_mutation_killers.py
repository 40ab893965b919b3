"""Tests that kill mutants mutmut found surviving (tests/MUTATION.md): each pins a behaviour no other test did.

Every test names, in its docstring, the kind of mutant it kills; tests/MUTATION.md lists each mutant with its test.
Most run on NumPy alone (what they pin is host-side: defaults, bounds, messages); the two that take ``xp`` run on
every backend, and the compiled step's on JAX when it is selected. They are cheap, and part of mutmut's selection
(pyproject.toml, ``[tool.mutmut]``).
"""

from __future__ import annotations

import math

import conftest
import numpy as np
import pytest

from xpnet import _progress, optim
from xpnet._npz import read_npz, write_npz
from xpnet.classifiers import FullyConnectedNet, ThreeLayerConvNet, load_model
from xpnet.gradient_check import (
    directional_grad_check,
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    eval_numerical_gradient_blobs,
    eval_numerical_gradient_net,
    grad_check_sparse,
    rel_error,
)
from xpnet.layers import (
    affine_forward,
    batchnorm_forward,
    layernorm_forward,
    max_pool_backward_fast,
    max_pool_backward_naive,
    max_pool_forward_fast,
    max_pool_forward_naive,
    relu_backward,
    relu_forward,
    softmax_loss,
    spatial_groupnorm_forward,
    svm_loss,
)
from xpnet.solver import NonFiniteLossError, Solver, checkpoint_epoch

from helpers import to_np, to_xp

# optim


def test_adam_accepts_step_count_zero_and_refuses_minus_one():
    """``t`` is the number of steps taken: 0 is a fresh start (kills ``t < 0`` -> ``t <= 0`` / ``t < 1``)."""
    w, dw = np.ones(3), np.full(3, 0.5)
    next_w, config = optim.adam(w, dw, {"t": 0, "learning_rate": 0.1})
    assert config["t"] == 1
    # The first bias-corrected Adam step moves every weight by the learning rate (up to epsilon).
    np.testing.assert_allclose(next_w, w - 0.1, rtol=1e-6)
    with pytest.raises(ValueError, match=r"config\['t'\] \(adam's step count\) must be an int >= 0, got -1"):
        optim.adam(w, dw, {"t": -1})
    # A NumPy integer skips the fast path for Python ints and takes the full check.
    _, config = optim.adam(w, dw, {"t": np.int64(0)})
    assert config["t"] == 1


def test_a_non_number_hyperparameter_is_refused_by_name():
    """The message names the key and shows the value given (kills the message emptied or its value dropped)."""
    with pytest.raises(TypeError, match=r"^config\['t'\] \(adam's step count\) must be an int >= 0, got 1\.5$"):
        optim.adam(np.ones(2), np.ones(2), {"t": 1.5})
    with pytest.raises(TypeError, match=r"^config\['learning_rate'\] must be a real number, got '0\.1'$"):
        optim.sgd(np.ones(2), np.ones(2), {"learning_rate": "0.1"})


def test_the_refusal_shows_whether_the_interval_is_open():
    """epsilon must be > 0 (an open bound), momentum in [0, 1): the message says which bound is open."""
    with pytest.raises(ValueError, match=r"^config\['epsilon'\] must be a finite number > 0, got 0\.0$"):
        optim.adam(np.ones(2), np.ones(2), {"epsilon": 0.0})
    with pytest.raises(ValueError, match=r"^config\['momentum'\] must be a finite number in \[0, 1\), got -0\.5$"):
        optim.sgd_momentum(np.ones(2), np.ones(2), {"momentum": -0.5})


# solver


def _data(n: int = 40, d: int = 5, c: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2 * n, d))
    y = rng.integers(0, c, 2 * n)
    return {"X_train": X[:n], "y_train": y[:n], "X_val": X[n:], "y_val": y[n:]}


def _solver(**kwargs) -> Solver:
    np.random.seed(0)
    model = FullyConnectedNet([8], input_dim=5, num_classes=3, dtype=np.float64)
    return Solver(model, _data(), num_epochs=1, batch_size=10, verbose=False, seed=0, **kwargs)


def test_check_accuracy_scores_num_samples_points():
    """With ``num_samples`` < N the accuracy is a count over ``num_samples`` draws (kills dropping the argument)."""
    solver = _solver()
    X = np.random.default_rng(1).standard_normal((50, 5))
    pred = np.argmax(solver.model.loss(X), axis=1)
    y = np.where(np.arange(50) < 25, pred, (pred + 1) % 3)  # right on exactly half of X
    assert solver.check_accuracy(X, y) == 0.5
    acc = solver.check_accuracy(X, y, num_samples=7)
    assert acc * 7 == pytest.approx(round(acc * 7)), f"{acc} is not a count over 7 samples"


@pytest.mark.parametrize(
    ("epoch", "ok"), [(0, True), (3, True), (-1, False), ("3", False), (2.0, False), (True, False)]
)
def test_checkpoint_epoch_takes_ints_from_zero(tmp_path, epoch, ok):
    """Epoch 0 is a checkpoint saved before training; negative, non-int or bool epochs are damage (kills the
    ``or`` -> ``and`` and ``< 0`` -> ``<= 0`` mutants of its check)."""
    solver = _solver()
    path = tmp_path / "ckpt.npz"
    solver.save_checkpoint(path)
    arrays, meta = read_npz(path)
    write_npz(path, arrays, {**meta, "epoch": epoch})
    if ok:
        assert checkpoint_epoch(path) == epoch
    else:
        with pytest.raises(ValueError, match=r"ckpt\.npz: metadata key 'epoch' must be an int >= 0, got "):
            checkpoint_epoch(path)


# gradient_check


def test_rel_error_below_one():
    """CS231n's floor is 1e-8: values far below 1 keep their relative error (kills ``1e-8`` -> ``1.00000001``)."""
    assert rel_error(np.array([1e-3]), np.array([2e-3])) == pytest.approx(1 / 3)
    assert rel_error(np.array([0.0]), np.array([0.0])) == 0.0


def test_grad_check_sparse_defaults_and_errors(capsys):
    """Ten checks by default, one printed line each; the relative error is CS231n's ``|n - a| / (|n| + |a|)``,
    NaN when either side is NaN (kills the default 10 -> 11, ``/`` -> ``*``, the 1e-12 floor and ``or`` -> ``and``)."""
    x = np.array([0.3, -0.2, 0.1])

    def f(a):
        return float(np.sum(a**2))

    errors = grad_check_sparse(f, x, 2 * x + np.array([1e-3, 1e-3, 1e-3]), seed=0)
    assert len(errors) == 10
    assert len(capsys.readouterr().out.splitlines()) == 10
    for err, ix in zip(errors, [None] * 10, strict=True):
        assert 1e-4 < err < 1e-2, ix  # |0.001| / (2|2x|) for |x| in [0.1, 0.3]
    nan_grad = np.array([np.nan, np.nan, np.nan])
    assert all(math.isnan(e) for e in grad_check_sparse(f, x, nan_grad, num_checks=2, seed=0))
    # Analytic and numerical gradients both tiny (below 1): the floor must not swallow their disagreement.
    tiny = np.array([1e-4, 1e-4, 1e-4])
    errors = grad_check_sparse(f, tiny, np.zeros(3), num_checks=3, seed=0)
    assert errors == pytest.approx([1.0] * 3)


def test_blobs_and_net_default_step_is_small():
    """The default ``h`` is 1e-5: on a curved function the estimate is then exact to ~1e-9 (kills ``h`` -> 1.00001
    and ``h=h`` dropped in eval_numerical_gradient_net)."""
    x = np.array([0.5, -1.0, 2.0])
    out = np.ones(3)
    (grad,) = eval_numerical_gradient_blobs(lambda a: np.exp(a), [x], out)
    np.testing.assert_allclose(grad, np.exp(x), rtol=1e-8)

    class Net:
        def forward(self):
            return np.exp(x) ** 2

    # A large step is used as given: (e^{2(x+h)} - e^{2(x-h)}) / 2h = e^{2x} sinh(2h) / h.
    (grad,) = eval_numerical_gradient_net(Net(), [x], out, h=0.5)
    np.testing.assert_allclose(grad, np.exp(2 * x) * np.sinh(1.0) / 0.5, rtol=1e-12)
    (grad,) = eval_numerical_gradient_net(Net(), [x], out)
    np.testing.assert_allclose(grad, 2 * np.exp(2 * x), rtol=1e-7)


def test_blobs_refuses_a_single_array_and_a_string():
    """``inputs`` must be a list: a lone array or a string is refused by name (kills the ``or`` -> ``and`` mutants)."""
    with pytest.raises(TypeError, match=r"inputs must be a list of arrays or blobs, got a single array; wrap it"):
        eval_numerical_gradient_blobs(lambda a: a, np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match=r"inputs must be a list of arrays or blobs, got builtins\.str$"):
        eval_numerical_gradient_blobs(lambda a: a, "ab", np.ones(2))


def test_directional_check_defaults_are_five_seeded_directions():
    """Five directions by default, drawn from seed 0: two calls agree exactly (kills 5 -> 6 and ``rng`` ignored)."""
    x = np.linspace(-1.0, 1.0, 12)
    wrong = 2 * x + 1e-3

    def f(a):
        return float(np.sum(a**2))

    first = directional_grad_check(f, x, wrong)
    assert len(first) == 5
    assert directional_grad_check(f, x, wrong) == first
    assert directional_grad_check(f, x, wrong, seed=0) == first
    assert directional_grad_check(f, x, wrong, seed=1) != first
    assert directional_grad_check(f, x, wrong, seed=None) == first  # None: seed 0, a check must be repeatable
    # x is only read: a read-only array is fine.
    x.flags.writeable = False
    assert directional_grad_check(f, x, wrong) == first


def test_analytic_grad_and_rel_error_refusals_name_what_was_given():
    """A scalar analytic_grad and a string array name what they got (kills the messages replaced or emptied)."""
    with pytest.raises(TypeError, match=r"^analytic_grad must be an array of x's shape \(3,\), got builtins\.float$"):
        grad_check_sparse(lambda a: 0.0, np.ones(3), 1.0)
    with pytest.raises(TypeError, match=r"^x must have a real dtype, got str32$"):
        rel_error(np.array(["a"]), np.array(["b"]))


# layers


def test_svm_margin_of_exactly_zero_is_not_a_violation(xp):
    """CS231n's hinge counts margins > 0: a class exactly one below the correct score adds nothing to the loss nor to
    the gradient (kills ``margins > 0`` -> ``>= 0``)."""
    x = to_xp(np.array([[0.0, 1.0, -3.0]]), xp, dtype="float32")
    loss, dx = svm_loss(x, to_xp(np.array([1]), xp))
    assert float(loss) == 0.0
    np.testing.assert_array_equal(to_np(dx), np.zeros((1, 3)))


def test_spatial_groupnorm_with_one_group_is_layernorm_over_c_h_w(xp):
    """G=1 is allowed (one group of every channel; kills ``minimum=1`` -> 2)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3, 3))
    ones, zeros = np.ones((1, 4, 1, 1)), np.zeros((1, 4, 1, 1))
    out, _ = spatial_groupnorm_forward(
        to_xp(x, xp, "float32"), to_xp(ones, xp, "float32"), to_xp(zeros, xp, "float32"), 1, {}
    )
    flat = x.reshape(2, -1)
    expected = (flat - flat.mean(axis=1, keepdims=True)) / np.sqrt(flat.var(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(to_np(out).reshape(2, -1), expected, rtol=1e-4, atol=1e-5)


# classifiers


def test_three_layer_convnet_defaults_are_cs231n_s():
    """CS231n's defaults: 32 filters of 7x7 on 3x32x32, 100 hidden units, 10 classes, biases at zero (kills the
    default 32 -> 33, 100 -> 101 and a bias initialised to ones)."""
    model = ThreeLayerConvNet(dtype=np.float64)
    shapes = {k: tuple(v.shape) for k, v in model.params.items()}
    assert shapes == {
        "W1": (32, 3, 7, 7),
        "b1": (32,),
        "W2": (32 * 16 * 16, 100),
        "b2": (100,),
        "W3": (100, 10),
        "b3": (10,),
    }
    for b in ("b1", "b2", "b3"):
        assert not np.any(to_np(model.params[b])), b


def test_three_layer_convnet_takes_the_smallest_poolable_input():
    """H = W = 2 is enough for the 2x2 pool (kills ``H < 2`` -> ``H <= 2`` / ``H < 3`` and the same for W)."""
    model = ThreeLayerConvNet(input_dim=(1, 2, 2), num_filters=2, filter_size=1, hidden_dim=3, num_classes=2)
    assert model.params["W2"].shape == (2, 3)
    for input_dim in [(1, 1, 2), (1, 2, 1)]:
        with pytest.raises(ValueError, match=r"input_dim must have H >= 2 and W >= 2 for the 2x2 max pool"):
            ThreeLayerConvNet(input_dim=input_dim)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"input_dim": (3, 0, 8)}, r"input_dim\[1\]"),
        ({"filter_size": 0}, "filter_size"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_three_layer_convnet_names_the_bad_size(kwargs, name):
    """Each size refused names its argument (kills the names dropped or changed)."""
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        ThreeLayerConvNet(**{"input_dim": (3, 8, 8), **kwargs})


def test_three_layer_convnet_refuses_a_string_input_dim():
    """A 3-character string is not a (C, H, W) tuple (kills ``or`` -> ``and`` in the check)."""
    with pytest.raises(TypeError, match=r"input_dim must be a \(C, H, W\) tuple of positive ints, got 'abc'"):
        ThreeLayerConvNet(input_dim="abc")


def test_the_accuracy_checks_subsample_as_asked():
    """``num_train_samples`` and ``num_val_samples`` bound each epoch's accuracy checks, as in CS231n: with 7, every
    recorded accuracy is a count over 7 points (kills either argument dropped, which scores all 40)."""
    solver = _solver(num_train_samples=7, num_val_samples=7)
    solver.train()
    for history in (solver.train_acc_history, solver.val_acc_history):
        assert history
        for acc in history:
            assert acc * 7 == pytest.approx(round(acc * 7)), f"{history} are not counts over 7 samples"


@pytest.mark.parametrize("fast", [False, True])
def test_max_pool_backward_returns_the_input_dtype(fast):
    """A float32 ``dout`` for a float64 input is promoted first: dx has x's dtype (kills ``x`` dropped from the
    common-dtype call)."""
    forward, backward = (
        (max_pool_forward_fast, max_pool_backward_fast) if fast else (max_pool_forward_naive, max_pool_backward_naive)
    )
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    out, cache = forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = backward(out.astype(np.float32), cache)
    assert dx.dtype == np.float64


def test_spatial_groupnorm_refuses_zero_channels_by_name():
    """No channel means no value to average over (C/G = 0): refused, not NaN (kills the C/G axis left out)."""
    with pytest.raises(ValueError, match=r"averages over \(C/G, H, W\), got shape \(2, 0, 3, 3\)"):
        spatial_groupnorm_forward(np.zeros((2, 0, 3, 3)), np.ones((1, 0, 1, 1)), np.zeros((1, 0, 1, 1)), 1, {})


def test_eval_numerical_gradient_array_refuses_a_list_output():
    """``f`` returns an array, or a scalar for a 0-d ``df``: a list is refused by name, a Python float for a 0-d
    ``df`` is accepted (kills either ``not`` of that check dropped)."""
    with pytest.raises(TypeError, match=r"^f\(x\) must return an array of df's shape \(2,\), got builtins\.list$"):
        eval_numerical_gradient_array(lambda a: [1.0, 2.0], np.ones(2), np.ones(2))
    # A Python float for a 0-d df is a scalar output, accepted.
    grad = eval_numerical_gradient_array(lambda a: float(np.sum(a**2)), np.array([1.0, 2.0]), np.array(1.0))
    np.testing.assert_allclose(grad, [2.0, 4.0], rtol=1e-8)


def test_an_output_on_another_backend_is_refused():
    """``f`` returning a torch tensor for a NumPy ``x``, or a torch ``df`` or ``analytic_grad``, is refused, not
    converted (kills an array dropped from the backend checks of the gradient functions)."""
    torch = pytest.importorskip("torch")
    message = r"^arrays come from different backends \(x is numpy\.ndarray, {} is torch\.Tensor\)"
    with pytest.raises(TypeError, match=message.format(r"f\(x\)")):
        eval_numerical_gradient_array(lambda a: torch.asarray(a), np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match=message.format(r"f\(\*inputs\)")):
        eval_numerical_gradient_blobs(lambda a: torch.asarray(a), [np.ones(2)], np.ones(2))
    t = torch.ones(2, dtype=torch.float64)
    with pytest.raises(TypeError, match=message.format("df")):
        eval_numerical_gradient_array(lambda a: a, np.ones(2), t)
    with pytest.raises(TypeError, match=message.format("analytic_grad")):
        grad_check_sparse(lambda a: 0.0, np.ones(2), t)


def test_batchnorm_momentum_zero_is_allowed():
    """momentum is in [0, 1]: 0 keeps only the last batch's statistics (kills the closed lower bound made open)."""
    x = np.random.default_rng(0).standard_normal((8, 3))
    bn_param = {"mode": "train", "momentum": 0.0}
    batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], x.mean(axis=0), rtol=1e-12)


def test_layernorm_without_a_param_dict_uses_eps_1e_5():
    """``ln_param=None`` means CS231n's default eps, 1e-5 (kills the default changed in that branch)."""
    x = np.random.default_rng(0).standard_normal((4, 5))
    out, _ = layernorm_forward(x, np.ones(5), np.zeros(5), None)
    expected = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-10)


@pytest.mark.parametrize("loss", [softmax_loss, svm_loss])
def test_losses_take_one_sample_or_one_class_and_refuse_none(loss):
    """N = 1 and C = 1 are valid batches; N = 0 or C = 0 is refused, and so is a label outside [0, C) (kills the
    emptiness check's ``or`` -> ``and`` and ``== 0`` -> ``== 1``)."""
    value, dx = loss(np.array([[0.5, -0.5]]), np.array([0]))
    assert np.isfinite(float(value)) and dx.shape == (1, 2)
    value, dx = loss(np.array([[0.5], [1.5]]), np.array([0, 0]))
    assert float(value) == 0.0 and dx.shape == (2, 1)
    for shape in [(0, 3), (2, 0)]:
        with pytest.raises(ValueError, match=r"^x must have at least one sample and one class, got shape"):
            loss(np.zeros(shape), np.zeros(shape[0], dtype=np.int64))
    with pytest.raises(ValueError, match=r"^y must hold labels in \[0, C\) = \[0, 3\), got values from 5 to 5"):
        loss(np.zeros((1, 3)), np.array([5]))


def _trained_fc(**kwargs) -> tuple[FullyConnectedNet, np.ndarray]:
    np.random.seed(0)
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, dtype=np.float64, **kwargs)
    X = np.random.default_rng(0).standard_normal((6, 3))
    model.loss(X, np.array([0, 1, 0, 1, 0, 1]))
    return model, X


def test_get_state_and_set_state_copy_the_arrays():
    """Writing into the dict get_state returned, or into the one given to set_state, leaves the model alone (kills
    ``copy=True`` -> ``None``/``False``/dropped in both)."""
    model, _ = _trained_fc(normalization="batchnorm")
    state = model.get_state()
    kept = {k: np.array(v, copy=True) for k, v in state.items()}
    assert set(kept) == {"bn1.running_mean", "bn1.running_var"}
    for v in state.values():
        v[...] = 99.0
    for k, v in model.get_state().items():
        np.testing.assert_array_equal(v, kept[k])
    given = {k: np.array(v, copy=True) for k, v in kept.items()}
    model.set_state(given)
    for v in given.values():
        v[...] = -1.0
    for k, v in model.get_state().items():
        np.testing.assert_array_equal(v, kept[k])


def test_fc_batchnorm_test_mode_scores_each_sample_alone():
    """Without ``y`` batchnorm uses its running statistics, so a sample's scores do not depend on the rest of the
    batch (kills the test mode never reaching the bn_params)."""
    model, X = _trained_fc(normalization="batchnorm")
    np.testing.assert_allclose(model.loss(X[:2]), model.loss(X)[:2], rtol=1e-12)


def test_fc_dropout_param_records_the_last_mode():
    """As in CS231n, ``model.dropout_param['mode']`` is the mode of the last call (kills it left unset)."""
    model, X = _trained_fc(dropout_keep_ratio=0.5, seed=0)
    assert model.dropout_param["mode"] == "train"
    model.loss(X)
    assert model.dropout_param["mode"] == "test"


def test_eval_numerical_gradient_prints_only_when_verbose(capsys):
    """``verbose=False`` prints nothing; the default prints one line per entry, as in CS231n (kills ``verbose``
    ignored)."""
    x = np.array([1.0, 2.0, 3.0])
    grad = eval_numerical_gradient(lambda a: float(np.sum(a**2)), x, verbose=False)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-8)
    assert capsys.readouterr().out == ""
    eval_numerical_gradient(lambda a: float(np.sum(a**2)), x)
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_an_integer_operand_takes_a_float32_layers_dtype():
    """An int ``b`` (or int ``dout``) meeting float32 arrays is cast to float32, not to the default float64 (kills
    ``xp.astype(a, None)`` in ``promote`` and ``as_common_dtype``)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    out, _ = affine_forward(x, w, np.arange(4))
    assert out.dtype == np.float32
    _, cache = relu_forward(x)
    dx = relu_backward(np.ones((2, 3), dtype=np.int64), cache)
    assert dx.dtype == np.float32


def test_a_model_file_with_a_non_string_dtype_is_refused(tmp_path):
    """``config['dtype']`` must be a dtype name; a number is named as damage (kills ``in`` -> ``not in``)."""
    path = tmp_path / "m.npz"
    FullyConnectedNet([4], input_dim=3, num_classes=2, dtype=np.float32).save(path)
    arrays, meta = read_npz(path)
    write_npz(path, arrays, {**meta, "config": {**meta["config"], "dtype": 32}})
    with pytest.raises(ValueError, match=r"config\['dtype'\] must be a dtype name such as 'float32', got 32"):
        load_model(path)


@pytest.mark.parametrize("split", ["train", "val"])
def test_the_solvers_own_x_with_other_labels_is_checked(split):
    """Only the Solver's own (X, y) pairs skip the labels' check: its X with out-of-range labels is refused (kills
    ``y is self.y_*`` -> ``y is not self.y_*``)."""
    solver = _solver()
    X = solver.X_train if split == "train" else solver.X_val
    with pytest.raises(ValueError, match="y"):
        solver.check_accuracy(X, np.full(X.shape[0], 7))


def test_ties_in_val_accuracy_keep_the_first_best_params():
    """With a learning rate too small to change any prediction every val accuracy ties, so the best params stay
    those of the first check: 1 and 2 epochs end with the same params (kills ``>`` -> ``>=``)."""
    finals = []
    for epochs in (1, 2):
        solver = _solver(optim_config={"learning_rate": 1e-9})
        solver.num_epochs = epochs
        solver.train()
        assert len(set(solver.val_acc_history)) == 1 and solver.val_acc_history[0] > 0
        finals.append({k: np.asarray(v).copy() for k, v in solver.model.params.items()})
    for k in finals[0]:
        np.testing.assert_array_equal(finals[0][k], finals[1][k])


class _PoisonedNet(FullyConnectedNet):
    """A FullyConnectedNet whose training loss becomes NaN from its ``at``-th call on."""

    def __init__(self, at: int):
        np.random.seed(0)
        super().__init__([8], input_dim=5, num_classes=3, dtype=np.float64)
        self.at, self.calls = at, 0

    def loss(self, X, y=None):
        if y is None:
            return super().loss(X)
        self.calls += 1
        loss, grads = super().loss(X, y)
        return (loss * math.nan, grads) if self.calls >= self.at else (loss, grads)


@pytest.mark.parametrize(("at", "held"), [(1, "the params training started from"), (6, "the best params so far")])
def test_the_divergence_names_the_params_held_and_sets_the_iteration(tmp_path, at, held):
    """The error says which params the model holds (best ones only once a check kept some), and the iteration
    counter (saved in a checkpoint) stops at the bad iteration (kills the 'held' clause's mutants and
    ``_iteration = None``)."""
    solver = Solver(_PoisonedNet(at), _data(), num_epochs=3, batch_size=10, verbose=False, seed=0, on_nonfinite="raise")
    with pytest.raises(NonFiniteLossError, match=f"model.params holds {held}"):
        solver.train()
    solver.save_checkpoint(tmp_path / "ckpt.npz")
    assert read_npz(tmp_path / "ckpt.npz")[1]["iteration"] == at


def test_verbose_lines_go_through_the_terminal_bars_write(monkeypatch, capsys):
    """While a terminal bar is drawn, verbose lines go through ``tqdm.write`` (which keeps the bar whole), not a
    plain print (kills the ``is`` -> ``is not`` and ``_print = None`` mutants of the bar's opening)."""
    written: list[str] = []
    monkeypatch.setattr(_progress.terminal_tqdm, "write", lambda s, *args, **kwargs: written.append(s))
    solver = _solver(progress=True)
    solver.verbose = True
    solver.train()
    assert any(s.startswith("(Iteration 1 / 4) loss: ") for s in written), written
    assert any(s.startswith("(Epoch 1 / 1) train acc: ") for s in written), written
    assert "(Iteration" not in capsys.readouterr().out


def test_a_compiled_step_counts_its_iterations(tmp_path):
    """The compiled step advances the iteration counter by one, which a checkpoint saves (kills ``+= 1`` ->
    ``= 1`` and ``-= 1`` on the compiled path). JAX's jit compiles a tiny net in about a second."""
    if "jax" not in conftest.BACKENDS:
        pytest.skip(f"jax is not selected by XPNET_BACKENDS ({conftest.BACKENDS})")
    xp = conftest.load_backend("jax")
    np.random.seed(0)
    model = FullyConnectedNet([4], input_dim=5, num_classes=3, dtype="float64", xp=xp)
    solver = Solver(model, _data(), num_epochs=1, batch_size=10, verbose=False, seed=0, compile=True)
    step, calls = solver._step, []

    def counted_step():  # a miscounting step would never end the epoch: fail instead of hanging
        calls.append(1)
        assert len(calls) <= 4, "4 steps did not end the 4-iteration epoch"
        step()

    solver._step = counted_step
    solver.train()
    solver.save_checkpoint(tmp_path / "ckpt.npz")
    assert read_npz(tmp_path / "ckpt.npz")[1]["iteration"] == 4


def test_a_model_file_with_an_unknown_state_name_is_refused_by_name(tmp_path):
    """A state array the model has no slot for is named as damage, a ValueError before any array is read (kills
    ``unknown = None``, which ends in a KeyError)."""
    path = tmp_path / "m.npz"
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, normalization="batchnorm", dtype=np.float64)
    model.loss(np.zeros((2, 3)), np.zeros(2, dtype=np.int64))  # a training pass creates the running averages
    model.save(path)
    arrays, meta = read_npz(path)
    state = [k for k in arrays if k.startswith("state.")]
    assert state, list(arrays)
    write_npz(path, {**arrays, "state.bn_params.9.running_mean": arrays[state[0]]}, meta)
    with pytest.raises(
        ValueError, match=r"m\.npz holds state \['bn_params\.9\.running_mean'\], but a FullyConnectedNet"
    ):
        load_model(path)
