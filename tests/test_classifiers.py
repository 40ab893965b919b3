"""FullyConnectedNet, ThreeLayerConvNet and the 2019 edition's TwoLayerNet on every backend: gradients (numerical and
torch autograd), initial loss, overfitting a small set, CS231n-reproducible weights, portable save/load, and argument
errors."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet._backend import backend_name, dtype_name, load_namespace, namespace
from xpnet._npz import write_npz
from xpnet.classifiers import FullyConnectedNet, ThreeLayerConvNet, TwoLayerNet, fc_net, load_model
from xpnet.gradient_check import eval_numerical_gradient

from helpers import (
    FLOAT_DTYPES,
    F,
    assert_close,
    assert_close_to_reference,
    blobs,
    device_under_test,
    numerical_gradient_at,
    probes_every_entry,
    rel_error,
    require_dtype,
    requires_torch,
    sampled_entries,
    to_np,
    to_xp,
    torch,
    widest_float,
)

N, D, H1, H2, C = 2, 15, 20, 30, 10
NUMPY = load_namespace("numpy")


def _fc_data(xp, n=N, d=D, seed=231, dtype="float64"):
    rng = np.random.default_rng(seed)
    return to_xp(rng.standard_normal((n, d)), xp, dtype=dtype), to_xp(rng.integers(C, size=n), xp)


def _fc(xp, **kwargs):
    kwargs = {
        "input_dim": D,
        "num_classes": C,
        "weight_scale": 5e-2,
        "dtype": "float64",
        "xp": xp,
        "device": device_under_test(xp),
        **kwargs,
    }
    require_dtype(xp, kwargs["dtype"])
    return FullyConnectedNet([H1, H2], **kwargs)


def _cnn(xp, **kwargs):
    kwargs = {
        "input_dim": (2, 6, 6),
        "num_filters": 3,
        "filter_size": 3,
        "hidden_dim": 10,
        "dtype": "float64",
        "weight_scale": 1e-1,
        "xp": xp,
        "device": device_under_test(xp),
        **kwargs,
    }
    require_dtype(xp, kwargs["dtype"])
    return ThreeLayerConvNet(**kwargs)


def _cnn_data(xp, n=2, shape=(2, 6, 6), seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return to_xp(rng.standard_normal((n, *shape)), xp, dtype=dtype), to_xp(rng.integers(C, size=n), xp)


def _grad_error(numeric, analytic) -> float:
    """CS231n's relative error with ``|numeric| + |analytic|`` floored at 1e-3 instead of 1e-8.

    Centred differences at h=1e-5 on a loss of ~2 carry ~1e-11 of rounding noise: alone a relative error of 1e-5 on
    a gradient entry of 1e-6, which small initial weights produce. The floor compares such entries absolutely.
    """
    n, a = to_np(numeric), to_np(analytic)
    return float(np.max(np.abs(n - a) / np.maximum(1e-3, np.abs(n) + np.abs(a))))


def _max_grad_error(model, X, y):
    """Largest :func:`_grad_error` between analytic and numerical gradients over all params.

    On NumPy every entry of every param is checked, as the CS231n notebooks do. Elsewhere a fixed sample of each
    param's entries (:func:`helpers.sampled_entries`, the largest among them) is: every entry costs two loss calls,
    minutes on JAX and array_api_strict, and the float64 torch references check every entry on every backend.
    """
    loss, grads = model.loss(X, y)
    assert sorted(grads) == sorted(model.params)
    errors = {}
    for name, param in model.params.items():
        g = to_np(grads[name])
        assert g.shape == tuple(param.shape), name

        # The probe reaches the model through f's argument (on JAX, whose arrays are immutable, it is a copy).
        def loss_at(value, name=name):
            model.params[name] = value
            return model.loss(X, y)[0]

        if probes_every_entry(model.xp):
            errors[name] = _grad_error(eval_numerical_gradient(loss_at, param, verbose=False), g)
        else:
            entries = sampled_entries(g)
            numeric = numerical_gradient_at(loss_at, param, entries)
            model.params[name] = param
            errors[name] = _grad_error(numeric, np.asarray([g[ix] for ix in entries]))
    return max(errors.values()), errors


@pytest.mark.parametrize("reg", [0.0, 3.14])
@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_gradients_match_numerical(xp, backend, normalization, reg):
    np.random.seed(231)
    X, y = _fc_data(xp)
    model = _fc(xp, reg=reg, normalization=normalization)
    worst, errors = _max_grad_error(model, X, y)
    # With N=2, batchnorm maps each feature to a smoothed sign of the difference of two samples: its large third
    # derivative puts a truncation error of ~1e-6 into the centred difference (it grows 100x when h grows 10x).
    # The torch autograd test below checks those gradients to 1e-9.
    assert worst < (1e-5 if normalization == "batchnorm" else 1e-7), errors


def test_fc_gradients_with_seeded_dropout(xp, backend):
    np.random.seed(231)
    X, y = _fc_data(xp)
    model = _fc(xp, dropout_keep_ratio=0.5, seed=123)
    assert model.dropout_param == {"mode": "train", "p": 0.5, "seed": 123}
    worst, errors = _max_grad_error(model, X, y)
    assert worst < 1e-7, errors


def test_fc_dropout_is_the_2019_name_of_dropout_keep_ratio(xp):
    """The 2019 Dropout notebook's FullyConnectedNet(..., dropout=0.5, seed=123) is today's dropout_keep_ratio=0.5,
    and so is a positional 4th argument (2019's dropout, today's dropout_keep_ratio)."""
    dtype = widest_float(xp)
    X, y = _fc_data(xp, n=4, dtype=dtype)
    builds = {
        "dropout_keep_ratio=0.5": lambda: _fc(xp, dropout_keep_ratio=0.5, seed=123, dtype=dtype),
        "dropout=0.5": lambda: _fc(xp, dropout=0.5, seed=123, dtype=dtype),
        "positional": lambda: FullyConnectedNet(
            [H1, H2], D, C, 0.5, weight_scale=5e-2, dtype=dtype, seed=123, xp=xp, device=device_under_test(xp)
        ),
    }
    models = {}
    for name, build in builds.items():
        np.random.seed(231)
        models[name] = build()
    reference = models.pop("dropout_keep_ratio=0.5")
    ref_loss, ref_grads = reference.loss(X, y)
    for name, model in models.items():
        assert model.config() == reference.config() and model.config()["dropout_keep_ratio"] == 0.5, name
        assert model.use_dropout and model.dropout_param == {"mode": "train", "p": 0.5, "seed": 123}, name
        for key, p in reference.params.items():
            assert_close(model.params[key], to_np(p), xp=xp, rtol=0, atol=0, err_msg=f"{name}: {key}")
        loss, grads = model.loss(X, y)
        assert_close(loss, to_np(ref_loss), xp=xp, rtol=0, atol=0, err_msg=f"{name}: loss")
        for key, g in ref_grads.items():
            assert_close(grads[key], to_np(g), xp=xp, rtol=0, atol=0, err_msg=f"{name}: d{key}")
    # dropout=1 is 2019's "no dropout", as dropout_keep_ratio=1 is today.
    assert not _fc(xp, dropout=1, dtype=dtype).use_dropout


def test_fc_dropout_and_dropout_keep_ratio_together_are_refused(xp):
    dtype = widest_float(xp)
    both = r"got both dropout .* and dropout_keep_ratio .*: got dropout=0.5 and dropout_keep_ratio=0.75; give one"
    with pytest.raises(TypeError, match=both):
        _fc(xp, dropout=0.5, dropout_keep_ratio=0.75, dtype=dtype)
    with pytest.raises(TypeError, match=both):
        FullyConnectedNet([H1], D, C, 0.75, dropout=0.5, dtype=dtype, xp=xp, device=device_under_test(xp))
    # dropout_keep_ratio at its default (1, no dropout) is not a second setting: dropout decides.
    assert _fc(xp, dropout=0.5, dropout_keep_ratio=1, dtype=dtype).dropout_keep_ratio == 0.5
    # A bad keep probability is named by the keyword it came in.
    with pytest.raises(ValueError, match=r"^dropout must be a finite number in \(0, 1\], got 0$"):
        _fc(xp, dropout=0, dtype=dtype)
    with pytest.raises(TypeError, match=r"^dropout must be a real number, got '0.5'"):
        _fc(xp, dropout="0.5", dtype=dtype)


def _torch_fc_loss(params, X, y, normalization, reg, num_layers, eps=1e-5):
    """The same network written with torch.nn.functional, for autograd as an independent reference."""
    p = {k: torch.tensor(to_np(v), dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    h = torch.tensor(to_np(X), dtype=torch.float64)
    for i in range(1, num_layers):
        h = h @ p[f"W{i}"] + p[f"b{i}"]
        if normalization == "batchnorm":
            h = F.batch_norm(h, None, None, p[f"gamma{i}"], p[f"beta{i}"], training=True, eps=eps)
        elif normalization == "layernorm":
            h = F.layer_norm(h, h.shape[1:], p[f"gamma{i}"], p[f"beta{i}"], eps=eps)
        h = F.relu(h)
    scores = h @ p[f"W{num_layers}"] + p[f"b{num_layers}"]
    loss = F.cross_entropy(scores, torch.tensor(to_np(y)))
    loss = loss + 0.5 * reg * sum((p[f"W{i}"] ** 2).sum() for i in range(1, num_layers + 1))
    loss.backward()
    return loss.detach().numpy(), {k: v.grad.numpy() for k, v in p.items()}


# The most values one entry of a loss or gradient of the FC nets below sums over: the widest layer (H2=30).
FC_TERMS = H2


@requires_torch
@FLOAT_DTYPES
@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_loss_and_gradients_match_torch_autograd(xp, normalization, dtype):
    # The reference computes in float64 from the model's own (dtype) weights and data: only the arithmetic differs.
    np.random.seed(0)
    X, y = _fc_data(xp, n=6, seed=1, dtype=dtype)
    model = _fc(xp, reg=0.7, normalization=normalization, dtype=dtype)
    loss, grads = model.loss(X, y)
    assert namespace(loss) is xp and tuple(loss.shape) == ()  # a 0-d array: no host sync inside loss()
    expected_loss, expected = _torch_fc_loss(model.params, X, y, normalization, 0.7, model.num_layers)
    assert_close_to_reference(loss, expected_loss, dtype=dtype, xp=xp, terms=FC_TERMS, err_msg="loss")
    for name, g in grads.items():
        assert_close_to_reference(g, expected[name], dtype=dtype, xp=xp, terms=FC_TERMS, err_msg=name)


def test_fc_regularization_adds_half_reg_sum_of_squared_weights(xp):
    X, y = _fc_data(xp)
    model = _fc(xp, normalization="layernorm")
    plain = float(model.loss(X, y)[0])
    model.reg = 0.25
    penalty = 0.5 * 0.25 * sum(float(np.sum(to_np(model.params[f"W{i}"]) ** 2)) for i in (1, 2, 3))
    assert float(model.loss(X, y)[0]) == pytest.approx(plain + penalty, rel=1e-12)


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_fc_initial_loss_is_log_num_classes_and_scores_shape(xp, normalization):
    X, y = _fc_data(xp, n=20, dtype="float32")  # the model's default dtype
    model = FullyConnectedNet(
        [30],
        input_dim=D,
        num_classes=C,
        weight_scale=1e-3,
        normalization=normalization,
        xp=xp,
        device=device_under_test(xp),
    )
    loss, _ = model.loss(X, y)
    assert float(loss) == pytest.approx(math.log(C), abs=0.05)
    scores = model.loss(X)
    assert namespace(scores) is xp and tuple(scores.shape) == (20, C) and dtype_name(scores.dtype) == "float32"


def test_cnn_gradients_match_numerical(xp, backend):
    np.random.seed(231)
    X, y = _cnn_data(xp)
    model = _cnn(xp, reg=0.5)
    _, grads = model.loss(X, y)
    # Not a vacuous check: gradient flows through both ReLUs to the first layer.
    assert min(float(xp.max(xp.abs(grads[b]))) for b in ("b1", "b2")) > 1e-4
    worst, errors = _max_grad_error(model, X, y)
    assert worst < 1e-7, errors


def test_cnn_gradient_check_prints_the_2021_notebooks_b1_error(xp):
    """The ConvolutionalNetworks notebook's gradient-check cell (2021 and 2025 editions: h=1e-6, weight_scale 1e-3)
    prints b1's error as 3.397321e-06. b1's gradient entries are ~1e-5, and one ulp of the loss (4.4e-16 near
    log(10)) in one probe moves a numerical entry by 2.2e-10: the log-softmax loss, rounding one of the six probes
    the other way, printed 3.477652e-05 (as 2019's notebook, whose provided softmax_loss was the log-softmax)."""
    require_dtype(xp, "float64")
    np.random.seed(231)
    X = np.random.randn(2, 3, 16, 16)
    y = np.random.randint(10, size=2)
    model = ThreeLayerConvNet(
        num_filters=3,
        filter_size=3,
        input_dim=(3, 16, 16),
        hidden_dim=7,
        dtype="float64",
        xp=xp,
        device=device_under_test(xp),
    )
    _, grads = model.loss(X, y)

    # The notebook's lambda _: model.loss(X, y)[0] reads the probes written into model.params; this f also works
    # on JAX, whose probes are copies.
    def f(b1):
        model.params["b1"] = b1
        return model.loss(X, y)[0]

    error = rel_error(eval_numerical_gradient(f, model.params["b1"], verbose=False, h=1e-6), grads["b1"])
    print(f"b1 max relative error: {error:e}")
    assert error <= 2 * 3.397321e-06


def test_cnn_initial_loss_any_input_size(xp):
    X, y = _cnn_data(xp, n=8, shape=(1, 7, 9), dtype="float32")  # the model's default dtype
    model = ThreeLayerConvNet(
        input_dim=(1, 7, 9), num_filters=4, filter_size=5, hidden_dim=12, xp=xp, device=device_under_test(xp)
    )
    assert tuple(model.params["W2"].shape) == (4 * 3 * 4, 12)  # the pool floors 7/2 and 9/2
    loss, grads = model.loss(X, y)
    assert float(loss) == pytest.approx(math.log(C), abs=0.05)
    assert all(dtype_name(g.dtype) == "float32" for g in grads.values())
    assert tuple(model.loss(X).shape) == (8, C)


def _adam_fit(model, X, y, steps, lr):
    """A tiny full-batch Adam loop (the Solver is tested elsewhere); returns the training accuracy."""
    xp = model.xp
    m = {k: xp.zeros_like(v) for k, v in model.params.items()}
    v = {k: xp.zeros_like(p) for k, p in model.params.items()}
    for t in range(1, steps + 1):
        _, grads = model.loss(X, y)
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            step = lr * (m[k] / (1 - 0.9**t)) / (xp.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
            model.params[k] = model.params[k] - step
    return float(np.mean(np.argmax(to_np(model.loss(X)), axis=1) == to_np(y)))


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_fc_overfits_fifty_samples(xp, normalization):
    np.random.seed(0)
    rng = np.random.default_rng(1)
    # float64 inputs into a float32 model: loss() casts them.
    X, y = to_xp(rng.standard_normal((50, 20)), xp), to_xp(rng.integers(C, size=50), xp)
    model = FullyConnectedNet(
        [64],
        input_dim=20,
        num_classes=C,
        normalization=normalization,
        weight_scale=1e-1,
        xp=xp,
        device=device_under_test(xp),
    )
    assert _adam_fit(model, X, y, steps=150, lr=1e-2) == 1.0


def test_cnn_overfits_fifty_samples(xp):
    np.random.seed(0)
    X, y = _cnn_data(xp, n=50, shape=(1, 8, 8), seed=2, dtype="float32")  # the model's default dtype
    model = ThreeLayerConvNet(
        input_dim=(1, 8, 8),
        num_filters=8,
        filter_size=3,
        hidden_dim=64,
        weight_scale=1e-1,
        xp=xp,
        device=device_under_test(xp),
    )
    assert _adam_fit(model, X, y, steps=100, lr=1e-2) == 1.0


def test_weights_reproduce_cs231n_global_seed(xp):
    np.random.seed(231)
    model = FullyConnectedNet(
        [H1, H2],
        input_dim=D,
        num_classes=C,
        weight_scale=5e-2,
        normalization="batchnorm",
        xp=xp,
        device=device_under_test(xp),
    )
    np.random.seed(231)
    expected = {f"W{i}": np.random.randn(a, b) * 5e-2 for i, (a, b) in enumerate([(D, H1), (H1, H2), (H2, C)], 1)}
    for name, w in expected.items():
        assert_close(model.params[name], w.astype(np.float32), xp=xp, rtol=0, atol=0, err_msg=name)
    assert np.all(to_np(model.params["gamma2"]) == 1) and np.all(to_np(model.params["b3"]) == 0)
    assert model.bn_params == [{"mode": "train"}, {"mode": "train"}]

    np.random.seed(231)
    cnn = ThreeLayerConvNet(
        input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=5, xp=xp, device=device_under_test(xp)
    )
    np.random.seed(231)
    for name, shape in [("W1", (4, 3, 3, 3)), ("W2", (4 * 4 * 4, 5)), ("W3", (5, C))]:
        w = 1e-3 * np.random.randn(*shape)
        assert_close(cnn.params[name], w.astype(np.float32), xp=xp, rtol=0, atol=0, err_msg=name)


def _trained_bn_model(xp):
    model = _fc(xp, normalization="batchnorm", dropout_keep_ratio=0.75, seed=5, reg=0.1)
    X, y = _fc_data(xp, n=6)
    model.loss(X, y)  # one training pass creates the running statistics
    return model, X


@pytest.mark.parametrize("target", ["to_backend", "from_backend"])
def test_save_load_across_backends(xp, tmp_path, target):
    require_dtype(xp, "float64")  # the model is float64 on both sides
    source_xp, dest_xp = (NUMPY, xp) if target == "to_backend" else (xp, NUMPY)
    model, X = _trained_bn_model(source_xp)
    state = model.get_state()
    assert sorted(state) == ["bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"]
    model.save(tmp_path / "fc.npz")

    loaded = load_model(tmp_path / "fc.npz", xp=dest_xp, device=device_under_test(dest_xp))
    assert type(loaded) is FullyConnectedNet and loaded.config() == model.config()
    assert loaded.xp is dest_xp and dtype_name(loaded.dtype) == "float64"
    for name, p in model.params.items():
        assert_close(loaded.params[name], to_np(p), xp=dest_xp, rtol=0, atol=0, err_msg=name)
    for name, s in loaded.get_state().items():
        assert_close(s, to_np(state[name]), xp=dest_xp, rtol=0, atol=0, err_msg=name)
    X_dest = to_xp(to_np(X), dest_xp)
    assert_close(loaded.loss(X_dest), to_np(model.loss(X)), xp=dest_xp)


def test_cnn_save_load_and_class_checks(xp, tmp_path):
    model = _cnn(xp)
    model.save(tmp_path / "cnn.npz")
    loaded = ThreeLayerConvNet.load(tmp_path / "cnn.npz", xp=xp, device=device_under_test(xp))
    assert loaded.config() == model.config() and loaded.get_state() == {}
    X, _ = _cnn_data(xp)
    assert_close(loaded.loss(X), to_np(model.loss(X)), xp=xp, rtol=0, atol=0)
    with pytest.raises(ValueError, match="holds a ThreeLayerConvNet, not a FullyConnectedNet"):
        FullyConnectedNet.load(tmp_path / "cnn.npz")
    write_npz(tmp_path / "other.npz", {"W1": to_np(model.params["W1"])}, {"epoch": 3})
    with pytest.raises(ValueError, match="not an xpnet model file"):
        load_model(tmp_path / "other.npz")


def test_load_draws_no_random_numbers(tmp_path):
    _fc("numpy").save(tmp_path / "fc.npz")
    before = np.random.get_state()[1].copy()
    load_model(tmp_path / "fc.npz", xp="numpy")
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_set_state_restores_and_rejects_unknown_names(xp):
    model, X = _trained_bn_model(xp)
    saved = model.get_state()
    model.loss(X * 3.0, to_xp(np.arange(6) % C, xp))  # moves the running statistics
    assert rel_error(model.get_state()["bn1.running_mean"], saved["bn1.running_mean"]) > 1e-3
    model.set_state(saved)
    for name, s in model.get_state().items():
        assert_close(s, to_np(saved[name]), xp=xp, rtol=0, atol=0, err_msg=name)
    model.set_state({})
    assert model.get_state() == {} and "running_mean" not in model.bn_params[0]
    with pytest.raises(ValueError, match="bn9.running_mean"):
        model.set_state({"bn9.running_mean": saved["bn1.running_mean"]})
    with pytest.raises(ValueError, match=r"state\['bn2.running_var'\] must have shape \(30,\), got \(20,\)"):
        model.set_state({"bn2.running_var": saved["bn1.running_var"]})


@requires_torch
def test_backend_and_dtype_spellings():
    import array_api_strict

    for xp_arg, name in [
        (np, "numpy"),
        ("numpy", "numpy"),
        (torch, "torch"),
        ("torch", "torch"),
        (array_api_strict, "array_api_strict"),
        (load_namespace("torch"), "torch"),
    ]:
        model = FullyConnectedNet([4], input_dim=3, num_classes=2, xp=xp_arg)
        assert model.xp is load_namespace(name) and backend_name(namespace(model.params["W1"])) == name
    for dtype, expected in [
        (np.float64, "float64"),
        (np.dtype("float32"), "float32"),
        ("float64", "float64"),
        (torch.float64, "float64"),
    ]:
        model = ThreeLayerConvNet((1, 4, 4), 2, 3, 3, xp="torch", dtype=dtype)
        assert {dtype_name(p.dtype) for p in model.params.values()} == {expected}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hidden_dims": []}, TypeError, "hidden_dims must be a non-empty list"),
        ({"hidden_dims": [10, 0]}, ValueError, r"^hidden_dims\[1\] must be an int >= 1, got 0$"),
        ({"hidden_dims": [10.5]}, TypeError, r"^hidden_dims\[0\] must be an int >= 1, got 10.5$"),
        ({"input_dim": -3}, ValueError, r"^input_dim must be an int >= 1, got -3$"),
        ({"normalization": "groupnorm"}, ValueError, "normalization must be None, 'batchnorm' or 'layernorm'"),
        ({"dropout_keep_ratio": 0}, ValueError, r"dropout_keep_ratio must be a finite number in \(0, 1\], got 0"),
        ({"dropout_keep_ratio": math.nan}, ValueError, r"dropout_keep_ratio must be a finite number in \(0, 1\]"),
        ({"reg": -1.0}, ValueError, r"^reg must be a finite number >= 0, got -1.0$"),
        ({"reg": math.inf}, ValueError, r"^reg must be a finite number >= 0, got inf$"),
        ({"weight_scale": math.inf}, ValueError, r"^weight_scale must be a finite number > 0, got inf$"),
        ({"seed": -1}, ValueError, r"seed must be an int >= 0 or None, got -1"),
        ({"seed": True}, TypeError, r"seed must be an int >= 0 or None, got True"),
        ({"seed": "0"}, TypeError, r"seed must be an int >= 0 or None, got '0'"),
        ({"weight_scale": "big"}, TypeError, "weight_scale must be a real number"),
        ({"dtype": "int32"}, ValueError, "dtype must be a real floating dtype"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"seed": 2**32}, ValueError, r"seed must be an int in \[0, 2\*\*32 - 1\] \(as np.random.seed takes\)"),
        ({"xp": "mxnet"}, ValueError, "xp must be one of"),
    ],
)
def test_fc_bad_arguments(kwargs, error, match):
    kwargs = {"hidden_dims": [10], **kwargs}
    with pytest.raises(error, match=match):
        FullyConnectedNet(**kwargs)


@pytest.mark.parametrize(
    ("dtype", "error", "match"),
    [
        ([], TypeError, r"dtype must be a dtype or a dtype name such as 'float32', got \[\]"),
        (3, TypeError, r"dtype must be a dtype or a dtype name such as 'float32', got 3"),
        ("int32", ValueError, "dtype must be a real floating dtype"),
        (None, ValueError, "dtype must be a real floating dtype"),
    ],
)
def test_bad_dtype_is_named_on_every_backend(xp, dtype, error, match):
    device = device_under_test(xp)
    for build in (
        lambda: FullyConnectedNet([3], input_dim=4, dtype=dtype, xp=xp, device=device),
        lambda: ThreeLayerConvNet((1, 4, 4), 2, 3, 5, dtype=dtype, xp=xp, device=device),
    ):
        with pytest.raises(error, match=match):
            build()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"filter_size": 4}, ValueError, "filter_size must be odd"),
        ({"input_dim": (3, 32)}, TypeError, r"input_dim must be a \(C, H, W\) tuple"),
        ({"input_dim": (1, 1, 8)}, ValueError, "H >= 2 and W >= 2"),
        ({"num_filters": 0}, ValueError, r"^num_filters must be an int >= 1, got 0$"),
        ({"weight_scale": math.inf}, ValueError, r"^weight_scale must be a finite number > 0, got inf$"),
        ({"reg": math.inf}, ValueError, r"^reg must be a finite number >= 0, got inf$"),
    ],
)
def test_cnn_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ThreeLayerConvNet(**kwargs)


def _other_backend(xp):
    """A backend that is neither NumPy nor ``xp``'s (its arrays stay refused by a model on ``xp``), or None."""
    if backend_name(xp) != "array_api_strict":
        return load_namespace("array_api_strict")
    return None if torch is None else load_namespace("torch")


@requires_torch
def test_loss_rejects_inputs_of_another_backend_or_shape(xp):
    model = _fc(xp)
    name = backend_name(xp)
    with pytest.raises(TypeError, match=f"model's backend \\({name}\\)"):
        model.loss([[0.0] * D] * 2)
    other = _other_backend(xp)
    with pytest.raises(
        TypeError,
        match=rf"^X must be an array of the model's backend \({name}\)"
        rf"{'' if name == 'numpy' else ' or a NumPy array'}, "
        rf"got an array of {backend_name(other)}",
    ):
        model.loss(to_xp(np.zeros((2, D)), other))
    with pytest.raises(ValueError, match="15 features per row"):
        model.loss(to_xp(np.zeros((2, D + 1)), xp))
    with pytest.raises(ValueError, match=r"input_dim \(2, 6, 6\)"):
        _cnn(xp).loss(to_xp(np.zeros((2, 2, 6, 5)), xp))


def test_numpy_integer_seed_is_accepted():
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, dropout_keep_ratio=0.5, seed=np.int64(7))
    assert model.seed == 7 and type(model.config()["seed"]) is int


def _everything(model) -> dict:
    """The state a loss call may change: running statistics, layer dicts' modes, params, NumPy's global rng."""
    out = {f"state {k}": to_np(v).copy() for k, v in model.get_state().items()}
    out.update({f"param {k}": to_np(v).copy() for k, v in model.params.items()})
    out["modes"] = [p.get("mode") for p in getattr(model, "bn_params", [])]
    out["dropout"] = dict(getattr(model, "dropout_param", {}))
    out["rng"] = np.random.get_state()[1].copy()
    return out


def _assert_unchanged(model, before: dict):
    after = _everything(model)
    assert sorted(after) == sorted(before)
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
        else:
            assert after[key] == value, key


def _bad_loss_calls(xp, X, y, num_classes):
    """(X, y, error, match) for calls a model must refuse before computing anything."""
    n = X.shape[0]
    y_np = to_np(y)
    other = _other_backend(xp)
    return [
        (X[:0, ...], y[:0], ValueError, r"X must hold at least one example, got shape \(0, "),
        (
            X,
            to_xp(np.where(np.arange(n) == 1, num_classes, y_np), xp),
            ValueError,
            rf"y must hold class labels in \[0, {num_classes}\) \(num_classes\), got values from \d+ to {num_classes}",
        ),
        (X, to_xp(np.where(np.arange(n) == 0, -1, y_np), xp), ValueError, r"y must hold class labels in \[0, "),
        (X, y[:-1], ValueError, rf"y must have shape \({n},\), one label per row of X, got \({n - 1},\)"),
        (X, xp.reshape(y, (n, 1)), ValueError, rf"y must have shape \({n},\)"),
        (X, to_xp(y_np * 1.0, xp), TypeError, r"y must hold integer class labels, got dtype .*float64"),
        *([(X, to_xp(y_np, other), TypeError, r"y must be an array of the model's backend")] if other else []),
        (X, list(y_np), TypeError, r"y must be an array of the model's backend \(.*\)( or a NumPy array)?, got list"),
        # The same defects in NumPy labels (moved to the model's backend only once they pass) are refused alike.
        (
            X,
            np.where(np.arange(n) == 1, num_classes, y_np),
            ValueError,
            rf"y must hold class labels in \[0, {num_classes}\)",
        ),
        (X, y_np[:-1], ValueError, rf"y must have shape \({n},\), one label per row of X, got \({n - 1},\)"),
        (X, y_np * 1.0, TypeError, r"y must hold integer class labels, got dtype .*float64"),
        (to_np(X).astype(str), y, TypeError, r"X must hold real numbers, got dtype <U"),
    ]


@pytest.mark.parametrize("trained", [True, False], ids=["after-training", "fresh"])
def test_fc_refused_loss_call_changes_nothing(xp, trained):
    """Validate first, mutate last: running statistics (even their absence), layer modes and NumPy's global
    random state (unseeded dropout) are as before a refused call."""
    model = _fc(xp, normalization="batchnorm", dropout_keep_ratio=0.75)
    X, y = _fc_data(xp, n=6)
    if trained:
        model.loss(X, y)
        model.loss(X)  # leaves the layers in test mode
    before = _everything(model)
    for bad_X, bad_y, error, match in _bad_loss_calls(xp, X, y, C):
        with pytest.raises(error, match=match):
            model.loss(bad_X, bad_y)
        _assert_unchanged(model, before)
    with pytest.raises(ValueError, match=r"X must hold at least one example, got shape \(0, 15\)"):
        model.loss(X[:0, ...])
    _assert_unchanged(model, before)


def test_cnn_refused_loss_call_changes_nothing(xp):
    model = _cnn(xp)
    X, y = _cnn_data(xp, n=3)
    before = _everything(model)
    for bad_X, bad_y, error, match in _bad_loss_calls(xp, X, y, C):
        with pytest.raises(error, match=match):
            model.loss(bad_X, bad_y)
        _assert_unchanged(model, before)


def test_fc_failure_after_the_forward_pass_leaves_running_statistics_as_they_were(xp, monkeypatch):
    """Every batchnorm layer has run when the loss fails: its new statistics must not have been written."""
    model, X = _trained_bn_model(xp)
    before = _everything(model)

    def failing_loss(scores, y):
        raise MemoryError("simulated failure after the forward pass")

    monkeypatch.setattr(fc_net, "softmax_loss", failing_loss)
    with pytest.raises(MemoryError):
        model.loss(X, to_xp(np.arange(6) % C, xp))
    before["rng"] = np.random.get_state()[1].copy()  # seeded dropout: the global state is not involved
    _assert_unchanged(model, before)


@given(labels=st.lists(st.integers(-3, C + 3), min_size=1, max_size=8).filter(lambda v: min(v) < 0 or max(v) >= C))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_out_of_range_labels_never_touch_running_statistics(xp, labels):
    model, _ = _trained_bn_model(xp)
    before = _everything(model)
    X, _ = _fc_data(xp, n=len(labels))
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 10\)"):
        model.loss(X, to_xp(np.asarray(labels), xp))
    _assert_unchanged(model, before)


# normalization, dropout keep ratio: every hidden-layer variant, dropout seeded so both models drop the same units.
FC_VARIANTS = [(None, 1), ("batchnorm", 1), ("layernorm", 1), (None, 0.5), ("batchnorm", 0.75), ("layernorm", 0.5)]


def _numpy_and_backend_models(xp, make):
    """The same model (same weights, drawn from NumPy's global state) on NumPy and on ``xp``."""
    np.random.seed(231)
    reference = make(NUMPY)
    np.random.seed(231)
    return reference, make(xp)


def _assert_same_loss_and_scores(reference, model, X, y, X_in=None, y_in=None, terms=None):
    """``model`` given NumPy ``X`` and ``y`` (or ``X_in``, ``y_in``) computes what the NumPy ``reference`` computes
    from ``X`` and ``y``, on its own backend. With ``terms`` the reference is float64 and ``model`` computes in its
    own dtype: compared with :func:`helpers.reference_tol` for ``terms`` summed values."""

    def check(got, ref, name):
        if terms is None:
            assert_close(got, to_np(ref), xp=model.xp, err_msg=name)
        else:
            assert_close_to_reference(got, ref, dtype=dtype_name(model.dtype), xp=model.xp, terms=terms, err_msg=name)

    ref_loss, ref_grads = reference.loss(X, y)
    loss, grads = model.loss(X if X_in is None else X_in, y if y_in is None else y_in)
    check(loss, ref_loss, "loss")
    assert sorted(grads) == sorted(ref_grads)
    for name, g in grads.items():
        check(g, ref_grads[name], name)
    check(model.loss(X), reference.loss(X), "scores")
    for name, value in model.get_state().items():  # batchnorm's running statistics were updated alike
        check(value, reference.get_state()[name], name)


def _float64_reference_and_model(xp, make, dtype):
    """A float64 NumPy model and the same model on ``xp`` in ``dtype``: the reference's weights are the model's,
    so the two differ only by the arithmetic in ``dtype``."""
    np.random.seed(231)
    model = make(xp, dtype)
    np.random.seed(231)
    reference = make(NUMPY, "float64")
    reference.params = {k: to_np(v).astype(np.float64) for k, v in model.params.items()}
    return reference, model


@FLOAT_DTYPES
@pytest.mark.parametrize(("normalization", "keep"), FC_VARIANTS)
def test_fc_takes_numpy_input_on_any_backend(xp, normalization, keep, dtype):
    reference, model = _float64_reference_and_model(
        xp,
        lambda on, dt: _fc(on, normalization=normalization, dropout_keep_ratio=keep, seed=123, reg=0.1, dtype=dt),
        dtype,
    )
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((6, 3, 5)).astype(dtype), rng.integers(C, size=6)  # (N, d_1, d_2) as CS231n allows
    _assert_same_loss_and_scores(reference, model, X, y, terms=FC_TERMS)


def test_fc_takes_numpy_input_of_other_dtypes(xp):
    reference, model = _numpy_and_backend_models(xp, lambda on: _fc(on, dtype="float32"))
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((4, D)), rng.integers(C, size=4)
    for X_in, y_in in ((X, y), (X.astype(np.float32), y.astype(np.int32)), (X, y.astype(np.uint8))):
        _assert_same_loss_and_scores(reference, model, X, y, X_in, y_in)
    # NumPy labels with backend features, and the reverse.
    _assert_same_loss_and_scores(reference, model, X, y, to_xp(X, xp, "float32"), y)
    _assert_same_loss_and_scores(reference, model, X, y, X, to_xp(y, xp))


@FLOAT_DTYPES
def test_cnn_takes_numpy_input_on_any_backend(xp, dtype):
    reference, model = _float64_reference_and_model(xp, lambda on, dt: _cnn(on, reg=0.1, dtype=dt), dtype)
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((3, 2, 6, 6)).astype(dtype), rng.integers(C, size=3)
    # The widest sum: the hidden affine layer's input, 3 filters * 3 * 3 pooled positions = 27 (conv: 2*3*3 = 18).
    _assert_same_loss_and_scores(reference, model, X, y, terms=27)


def test_solver_with_numpy_data_trains_and_checks_accuracy_on_any_backend(xp):
    from xpnet.solver import Solver

    rng = np.random.default_rng(0)
    data = {
        "X_train": rng.standard_normal((20, D)),
        "y_train": rng.integers(C, size=20),
        "X_val": rng.standard_normal((10, D)),
        "y_val": rng.integers(C, size=10),
    }
    reference, model = _numpy_and_backend_models(xp, lambda on: _fc(on, normalization="batchnorm"))
    for m in (reference, model):
        np.random.seed(0)  # the same minibatches
        Solver(m, data, num_epochs=1, batch_size=10, verbose=False).train()
    assert_close(model.loss(data["X_val"]), to_np(reference.loss(data["X_val"])), xp=xp, rtol=1e-7, atol=1e-9)
    solver = Solver(model, data, verbose=False)
    assert solver.check_accuracy(data["X_val"], data["y_val"]) == pytest.approx(
        float(np.mean(np.argmax(to_np(reference.loss(data["X_val"])), axis=1) == data["y_val"]))
    )


def test_input_on_another_device_of_the_models_backend_is_refused_by_name():
    strict = load_namespace("array_api_strict")
    model = _fc(strict)
    X = strict.asarray(np.zeros((2, D)), device=strict.Device("device1"))
    with pytest.raises(ValueError, match=r"^X is on device .*device1.*, the model's params on .*CPU_DEVICE.*; move it"):
        model.loss(X)


# The 2019 edition's TwoLayerNet (assignment 2's FullyConnectedNets notebook; later editions moved it to assignment 1).


def _two_layer(xp, **kwargs):
    kwargs = {"input_dim": D, "hidden_dim": H1, "num_classes": C, "xp": xp, "device": device_under_test(xp), **kwargs}
    require_dtype(xp, kwargs.get("dtype", "float64"))
    return TwoLayerNet(**kwargs)


def test_two_layer_net_reproduces_the_2019_notebook(xp):
    """The FullyConnectedNets notebook's "TwoLayerNet" cell (2019), its numbers included, on the backend under test:
    its NumPy params and inputs are put there first, as a notebook on that backend would do."""
    require_dtype(xp, "float64")  # CS231n's default: the notebook's 1e-10 tolerances need it
    np.random.seed(231)
    N, D, H, C = 3, 5, 50, 7
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=N)
    std = 1e-3
    model = TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=std, xp=xp, device=device_under_test(xp))
    assert dtype_name(model.dtype) == "float64" and namespace(model.params["W1"]) is xp
    for w in ("W1", "W2"):
        assert abs(to_np(model.params[w]).std() - std) < std / 10, f"{w} is not initialized as weight_scale * randn"
    for b in ("b1", "b2"):
        assert np.all(to_np(model.params[b]) == 0), f"{b} is not initialized to zeros"

    model.params["W1"] = to_xp(np.linspace(-0.7, 0.3, num=D * H).reshape(D, H), xp)
    model.params["b1"] = to_xp(np.linspace(-0.1, 0.9, num=H), xp)
    model.params["W2"] = to_xp(np.linspace(-0.3, 0.4, num=H * C).reshape(H, C), xp)
    model.params["b2"] = to_xp(np.linspace(-0.9, 0.1, num=C), xp)
    X = np.linspace(-5.5, 4.5, num=N * D).reshape(D, N).T
    scores = model.loss(X)
    correct_scores = np.asarray(
        [
            [11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765, 16.09215096],
            [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135, 16.18839143],
            [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506, 16.2846319],
        ]
    )
    assert namespace(scores) is xp
    assert np.abs(to_np(scores) - correct_scores).sum() < 1e-6

    y = np.asarray([0, 5, 1])
    loss, grads = model.loss(X, y)
    assert sorted(grads) == ["W1", "W2", "b1", "b2"]
    assert abs(float(loss) - 3.4702243556) < 1e-10
    model.reg = 1.0
    loss, _ = model.loss(X, y)
    assert abs(float(loss) - 26.5948426952) < 1e-10


def test_two_layer_net_is_cs231n_2019s(xp):
    """Defaults, weights drawn as CS231n draws them (W1 then W2 from NumPy's global state), float64 by default, and
    the same network as FullyConnectedNet([hidden_dim])."""
    require_dtype(xp, "float64")
    np.random.seed(231)
    model = TwoLayerNet(xp=xp, device=device_under_test(xp))
    shapes = {name: tuple(p.shape) for name, p in model.params.items()}
    assert shapes == {"W1": (3 * 32 * 32, 100), "b1": (100,), "W2": (100, 10), "b2": (10,)}
    assert model.reg == 0.0 and dtype_name(model.dtype) == "float64"
    np.random.seed(231)
    for name, (rows, cols) in (("W1", (3 * 32 * 32, 100)), ("W2", (100, 10))):
        assert_close(model.params[name], 1e-3 * np.random.randn(rows, cols), xp=xp, rtol=0, atol=0, err_msg=name)

    np.random.seed(0)
    two_layer = _two_layer(xp, weight_scale=5e-2, reg=0.3)
    np.random.seed(0)
    fc = FullyConnectedNet([H1], D, C, weight_scale=5e-2, reg=0.3, dtype="float64", xp=xp, device=device_under_test(xp))
    X, y = _fc_data(xp, n=5)
    loss, grads = two_layer.loss(X, y)
    fc_loss, fc_grads = fc.loss(X, y)
    assert_close(loss, to_np(fc_loss), xp=xp, rtol=0, atol=0, err_msg="loss")
    for name, g in fc_grads.items():
        assert_close(grads[name], to_np(g), xp=xp, rtol=0, atol=0, err_msg=name)
    assert_close(two_layer.loss(X), to_np(fc.loss(X)), xp=xp, rtol=0, atol=0, err_msg="scores")


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_two_layer_net_gradients_match_numerical(xp, reg):
    np.random.seed(231)
    X, y = _fc_data(xp)
    model = _two_layer(xp, weight_scale=5e-2, reg=reg)
    worst, errors = _max_grad_error(model, X, y)
    assert worst < 1e-7, errors


def test_the_numerical_check_catches_every_gradient_one_percent_off(xp):
    """Negative control of :func:`_max_grad_error` on every backend (sampled entries off NumPy): each param's
    gradient scaled by 1.01 shows in that param's error, ~0.5% where the check passes at 1e-7."""
    np.random.seed(231)
    X, y = _fc_data(xp)
    model = _two_layer(xp, weight_scale=5e-2, reg=0.7)
    loss = model.loss

    def one_percent_off(X, y=None):
        if y is None:
            return loss(X)
        value, grads = loss(X, y)
        return value, {name: 1.01 * g for name, g in grads.items()}

    model.loss = one_percent_off
    _, errors = _max_grad_error(model, X, y)
    assert sorted(errors) == ["W1", "W2", "b1", "b2"] and min(errors.values()) > 1e-3, errors


@requires_torch
@FLOAT_DTYPES
def test_two_layer_net_loss_and_gradients_match_torch_autograd(xp, dtype):
    np.random.seed(0)
    X, y = _fc_data(xp, n=6, seed=1, dtype=dtype)
    model = _two_layer(xp, weight_scale=5e-2, reg=0.7, dtype=dtype)
    loss, grads = model.loss(X, y)
    assert namespace(loss) is xp and tuple(loss.shape) == ()  # a 0-d array: no host sync inside loss()
    expected_loss, expected = _torch_fc_loss(model.params, X, y, None, 0.7, num_layers=2)
    assert sorted(grads) == sorted(expected)
    assert_close_to_reference(loss, expected_loss, dtype=dtype, xp=xp, terms=H1, err_msg="loss")
    for name, g in grads.items():
        assert_close_to_reference(g, expected[name], dtype=dtype, xp=xp, terms=H1, err_msg=name)


def test_two_layer_net_trains_with_the_solver_and_round_trips_through_files(xp, tmp_path):
    """Solver checkpoints resume it, and model.save / load_model give back a TwoLayerNet on any backend."""
    from xpnet.solver import Solver

    data = blobs(n_train=40, n_val=10, dim=D, classes=C)
    dtype = widest_float(xp)

    def solver(**kwargs):
        np.random.seed(0)
        model = _two_layer(xp, weight_scale=1e-2, reg=1e-3, dtype=dtype)
        adam = {"update_rule": "adam", "optim_config": {"learning_rate": 2e-2}}
        return Solver(model, data, **adam, batch_size=10, verbose=False, seed=0, **kwargs)

    uninterrupted = solver(num_epochs=2)
    uninterrupted.train()
    assert uninterrupted.best_val_acc > 0.5
    solver(num_epochs=1, checkpoint_name=str(tmp_path / "two")).train()
    resumed = solver(num_epochs=2, resume_from=tmp_path / "two_epoch_1.npz")
    resumed.train()
    assert resumed.loss_history == uninterrupted.loss_history

    model = resumed.model
    model.save(tmp_path / "two.npz")
    for loaded in (
        load_model(tmp_path / "two.npz", xp=xp, device=device_under_test(xp)),
        TwoLayerNet.load(tmp_path / "two.npz", xp=xp, device=device_under_test(xp)),
    ):
        assert type(loaded) is TwoLayerNet and loaded.config() == model.config()
        assert loaded.config() == {
            "input_dim": D,
            "hidden_dim": H1,
            "num_classes": C,
            "weight_scale": 1e-2,
            "reg": 1e-3,
            "dtype": dtype,
        }
        for name, p in model.params.items():
            assert_close(loaded.params[name], to_np(p), xp=xp, rtol=0, atol=0, err_msg=name)
    if dtype == "float64":
        on_numpy = load_model(tmp_path / "two.npz")
        assert_close(model.loss(data["X_val"]), to_np(on_numpy.loss(data["X_val"])), xp=xp)
    with pytest.raises(ValueError, match="holds a TwoLayerNet, not a FullyConnectedNet"):
        FullyConnectedNet.load(tmp_path / "two.npz")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hidden_dim": 0}, ValueError, r"^hidden_dim must be an int >= 1, got 0$"),
        ({"input_dim": 2.5}, TypeError, r"^input_dim must be an int >= 1, got 2.5$"),
        ({"num_classes": -1}, ValueError, r"^num_classes must be an int >= 1, got -1$"),
        ({"weight_scale": 0}, ValueError, r"^weight_scale must be a finite number > 0, got 0$"),
        ({"reg": math.nan}, ValueError, r"^reg must be a finite number >= 0, got nan$"),
        ({"dtype": "int32"}, ValueError, "dtype must be a real floating dtype"),
    ],
)
def test_two_layer_net_bad_arguments(xp, kwargs, error, match):
    with pytest.raises(error, match=match):
        _two_layer(xp, **{"dtype": widest_float(xp), **kwargs})


def test_two_layer_net_refused_loss_call_changes_nothing(xp):
    model = _two_layer(xp, dtype=widest_float(xp))
    X, y = _fc_data(xp, n=3, dtype=widest_float(xp))
    before = _everything(model)
    for bad_X, bad_y, error, match in _bad_loss_calls(xp, X, y, C):
        with pytest.raises(error, match=match):
            model.loss(bad_X, bad_y)
        _assert_unchanged(model, before)
    with pytest.raises(ValueError, match=r"X must have shape \(N, ...\) with 15 features per row"):
        model.loss(to_xp(np.zeros((2, D + 1)), xp, widest_float(xp)))
