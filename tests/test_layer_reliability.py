"""One contract for every layer function, on every backend: a NaN propagates exactly as in torch (forward and
backward), integer/bool arrays promote as NumPy promotes them, complex arrays, lists and misspelled or out-of-range
param-dict entries are refused by name, mixed float precisions promote as the Array API standard says, and a call
that raises leaves the running statistics and NumPy's global random state as they were."""

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from xpnet import layer_utils as lu
from xpnet import layers as L
from xpnet._backend import dtype_name, load_namespace

from helpers import (
    F,
    assert_close,
    device_under_test,
    fixed_examples,
    requires_torch,
    to_np,
    to_xp,
    torch,
    widest_float,
)

if torch is not None:
    # As conftest does for the torch backend: the references run on tiny tensors, where threads cost milliseconds.
    torch.set_num_threads(1)

EPS = 1e-5
CONV = {"stride": 2, "pad": 1}
TILE = {"pool_height": 2, "pool_width": 2, "stride": 2}
OVERLAP = {"pool_height": 3, "pool_width": 3, "stride": 2}
LABELS = np.array([0, 3, 1, 4])
KEEP, SEED = 0.6, 5
RUNNING_MEAN, RUNNING_VAR = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.25, 4.0])


@dataclass(frozen=True)
class Case:
    """A layer (or sandwich, or loss) with fixed params and its float64 reference.

    ``forward(xp, **arrays)`` gives ``(out, cache)`` (``(loss, dx)`` for a loss), building fresh param dicts each
    call; ``backward(dout, cache)`` gives the gradients in ``shapes`` order (None for a loss). ``reference(arrays,
    dout)`` gives the NumPy ``(out, grads)`` that the layer must match, NaNs included.
    """

    forward: Callable
    backward: Callable | None
    shapes: dict
    reference: Callable
    nan_may_vanish: bool = False  # dropout: a dropped unit is exactly 0 whatever the input held
    nan_routing_may_differ: bool = False  # pooling windows with several NaNs: torch routes to the last one


def _autograd(fn):
    """A reference from a torch float64 forward ``fn(**tensors)``: its output and autograd gradients."""

    def reference(arrays, dout):
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
        out = fn(**tensors)
        out.backward() if dout is None else out.backward(torch.tensor(dout))
        return out.detach().numpy(), tuple(t.grad.numpy() for t in tensors.values())

    return reference


def _dropout_reference(arrays, dout):
    keep = np.random.RandomState(SEED).random_sample(arrays["x"].shape) < KEEP  # CS231n's np.random.seed mask
    return np.where(keep, arrays["x"] / KEEP, 0.0), (np.where(keep, dout / KEEP, 0.0),)


def _svm_reference(arrays, dout):
    """CS231n's vectorized SVM loss (torch's multi_margin_loss turns NaN margins into 0, so it is no reference)."""
    x, rows = arrays["x"], np.arange(len(LABELS))
    margins = np.maximum(0.0, x - x[rows, LABELS][:, None] + 1.0)
    margins[rows, LABELS] = 0.0
    binary = (margins > 0).astype(np.float64)
    binary[rows, LABELS] = -binary.sum(axis=1)
    return margins.sum() / len(rows), (binary / len(rows),)


def _t_bn(x, gamma, beta):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=EPS)


def _t_conv(x, w, b):
    return F.conv2d(x, w, b, stride=CONV["stride"], padding=CONV["pad"])


def _t_pool(pool_param):
    return lambda x: F.max_pool2d(x, (pool_param["pool_height"], pool_param["pool_width"]), pool_param["stride"])


def _t_affine(x, w, b):
    return F.linear(x.reshape(x.shape[0], -1), w.T, b)


AFFINE = {"x": (4, 2, 2), "w": (4, 3), "b": (3,)}
AFFINE_NORM = {"x": (4, 2, 2), "w": (4, 3), "b": (3,), "gamma": (3,), "beta": (3,)}
CONV_SHAPES = {"x": (2, 2, 5, 5), "w": (3, 2, 3, 3), "b": (3,)}

CASES = {
    "affine": Case(lambda xp, x, w, b: L.affine_forward(x, w, b), L.affine_backward, AFFINE, _autograd(_t_affine)),
    "relu": Case(lambda xp, x: L.relu_forward(x), L.relu_backward, {"x": (3, 4)}, _autograd(lambda x: torch.relu(x))),
    "batchnorm": Case(
        lambda xp, x, gamma, beta: L.batchnorm_forward(x, gamma, beta, {"mode": "train"}),
        L.batchnorm_backward,
        {"x": (4, 3), "gamma": (3,), "beta": (3,)},
        _autograd(_t_bn),
    ),
    "batchnorm_alt": Case(
        lambda xp, x, gamma, beta: L.batchnorm_forward(x, gamma, beta, {"mode": "train"}),
        L.batchnorm_backward_alt,
        {"x": (4, 3), "gamma": (3,), "beta": (3,)},
        _autograd(_t_bn),
    ),
    "batchnorm_test_mode": Case(
        lambda xp, x, gamma, beta: L.batchnorm_forward(
            x,
            gamma,
            beta,
            {"mode": "test", "running_mean": to_xp(RUNNING_MEAN, xp), "running_var": to_xp(RUNNING_VAR, xp)},
        ),
        L.batchnorm_backward,
        {"x": (4, 3), "gamma": (3,), "beta": (3,)},
        _autograd(
            lambda x, gamma, beta: F.batch_norm(
                x, torch.tensor(RUNNING_MEAN), torch.tensor(RUNNING_VAR), gamma, beta, training=False, eps=EPS
            )
        ),
    ),
    "spatial_batchnorm": Case(
        lambda xp, x, gamma, beta: L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"}),
        L.spatial_batchnorm_backward,
        {"x": (2, 3, 2, 2), "gamma": (3,), "beta": (3,)},
        _autograd(_t_bn),
    ),
    "layernorm": Case(
        lambda xp, x, gamma, beta: L.layernorm_forward(x, gamma, beta, {}),
        L.layernorm_backward,
        {"x": (3, 4), "gamma": (4,), "beta": (4,)},
        _autograd(lambda x, gamma, beta: F.layer_norm(x, (4,), gamma, beta, eps=EPS)),
    ),
    "groupnorm": Case(
        lambda xp, x, gamma, beta: L.spatial_groupnorm_forward(x, gamma, beta, 2, {}),
        L.spatial_groupnorm_backward,
        {"x": (2, 4, 2, 2), "gamma": (1, 4, 1, 1), "beta": (1, 4, 1, 1)},
        _autograd(lambda x, gamma, beta: F.group_norm(x, 2, gamma.reshape(4), beta.reshape(4), eps=EPS)),
    ),
    "dropout": Case(
        lambda xp, x: L.dropout_forward(x, {"mode": "train", "p": KEEP, "seed": SEED}),
        L.dropout_backward,
        {"x": (4, 5)},
        _dropout_reference,
        nan_may_vanish=True,
    ),
    "conv_naive": Case(
        lambda xp, x, w, b: L.conv_forward_naive(x, w, b, dict(CONV)),
        L.conv_backward_naive,
        CONV_SHAPES,
        _autograd(_t_conv),
    ),
    "conv_fast": Case(
        lambda xp, x, w, b: L.conv_forward_fast(x, w, b, dict(CONV)),
        L.conv_backward_fast,
        CONV_SHAPES,
        _autograd(_t_conv),
    ),
    "max_pool_naive": Case(
        lambda xp, x: L.max_pool_forward_naive(x, dict(OVERLAP)),
        L.max_pool_backward_naive,
        {"x": (1, 2, 5, 5)},
        _autograd(_t_pool(OVERLAP)),
    ),
    "max_pool_fast_tiling": Case(
        lambda xp, x: L.max_pool_forward_fast(x, dict(TILE)),
        L.max_pool_backward_fast,
        {"x": (2, 2, 4, 4)},
        _autograd(_t_pool(TILE)),
    ),
    "max_pool_fast_overlapping": Case(
        lambda xp, x: L.max_pool_forward_fast(x, dict(OVERLAP)),
        L.max_pool_backward_fast,
        {"x": (1, 2, 5, 5)},
        _autograd(_t_pool(OVERLAP)),
    ),
    "softmax_loss": Case(
        lambda xp, x: L.softmax_loss(x, to_xp(LABELS, xp)),
        None,
        {"x": (4, 5)},
        _autograd(lambda x: F.cross_entropy(x, torch.tensor(LABELS))),
    ),
    "svm_loss": Case(lambda xp, x: L.svm_loss(x, to_xp(LABELS, xp)), None, {"x": (4, 5)}, _svm_reference),
    "affine_relu": Case(
        lambda xp, x, w, b: lu.affine_relu_forward(x, w, b),
        lu.affine_relu_backward,
        AFFINE,
        _autograd(lambda x, w, b: torch.relu(_t_affine(x, w, b))),
    ),
    "affine_bn_relu": Case(
        lambda xp, x, w, b, gamma, beta: lu.affine_bn_relu_forward(x, w, b, gamma, beta, {"mode": "train"}),
        lu.affine_bn_relu_backward,
        AFFINE_NORM,
        _autograd(lambda x, w, b, gamma, beta: torch.relu(_t_bn(_t_affine(x, w, b), gamma, beta))),
    ),
    "affine_ln_relu": Case(
        lambda xp, x, w, b, gamma, beta: lu.affine_ln_relu_forward(x, w, b, gamma, beta, {}),
        lu.affine_ln_relu_backward,
        AFFINE_NORM,
        _autograd(
            lambda x, w, b, gamma, beta: torch.relu(F.layer_norm(_t_affine(x, w, b), (3,), gamma, beta, eps=EPS))
        ),
    ),
    "conv_relu": Case(
        lambda xp, x, w, b: lu.conv_relu_forward(x, w, b, dict(CONV)),
        lu.conv_relu_backward,
        CONV_SHAPES,
        _autograd(lambda x, w, b: torch.relu(_t_conv(x, w, b))),
    ),
    "conv_relu_pool": Case(  # stride 1, pad 1: the pooling windows tile the conv output, so no NaN can fall off
        lambda xp, x, w, b: lu.conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1}, dict(TILE)),
        lu.conv_relu_pool_backward,
        {"x": (2, 2, 4, 4), "w": (3, 2, 3, 3), "b": (3,)},
        _autograd(lambda x, w, b: _t_pool(TILE)(torch.relu(F.conv2d(x, w, b, stride=1, padding=1)))),
        nan_routing_may_differ=True,
    ),
    "conv_bn_relu": Case(
        lambda xp, x, w, b, gamma, beta: lu.conv_bn_relu_forward(x, w, b, gamma, beta, dict(CONV), {"mode": "train"}),
        lu.conv_bn_relu_backward,
        {**CONV_SHAPES, "gamma": (3,), "beta": (3,)},
        _autograd(lambda x, w, b, gamma, beta: torch.relu(_t_bn(_t_conv(x, w, b), gamma, beta))),
    ),
}
MULTI_INPUT = sorted(name for name, case in CASES.items() if len(case.shapes) > 1)


def _inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) for name, shape in case.shapes.items()}


def _dout(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(tuple(shape))


def _run(case, xp, arrays, dout_dtype=None):
    """``(out, grads, dout)`` of the layer on backend ``xp`` for NumPy or backend ``arrays``, with a seeded NumPy
    dout (a loss has none: its grads are ``(dx,)`` and dout is None)."""
    out, cache = case.forward(xp, **{k: to_xp(v, xp) if isinstance(v, np.ndarray) else v for k, v in arrays.items()})
    if case.backward is None:
        return out, (cache,), None
    dout = _dout(out.shape)
    grads = case.backward(to_xp(dout, xp, dtype=dout_dtype), cache)
    return out, (grads if isinstance(grads, tuple) else (grads,)), dout


@requires_torch
@pytest.mark.parametrize("name", sorted(CASES))
@fixed_examples(12)
@given(data=st.data())
def test_a_nan_input_propagates_as_in_torch(xp, name, data):
    # One NaN anywhere in any float argument: the output, and every gradient, must hold NaN exactly where the
    # reference does and the reference's values elsewhere.
    case = CASES[name]
    arrays = _inputs(case)
    arg = data.draw(st.sampled_from(sorted(case.shapes)), label="argument")
    index = data.draw(st.tuples(*(st.integers(0, n - 1) for n in case.shapes[arg])), label="index")
    arrays[arg][index] = np.nan
    out, grads, dout = _run(case, xp, arrays)
    ref_out, ref_grads = case.reference(arrays, dout)
    if not case.nan_may_vanish:
        assert np.isnan(to_np(out)).any(), f"{name}: a NaN in {arg}{list(index)} vanished from the output"
    assert_close(out, ref_out, xp=xp, err_msg=f"{name} output")
    assert len(grads) == len(ref_grads)
    for what, got, ref in zip(case.shapes if case.backward else ["x"], grads, ref_grads, strict=True):
        if case.nan_routing_may_differ:
            np.testing.assert_array_equal(np.isnan(to_np(got)), np.isnan(ref), err_msg=f"{name} d{what}")
        else:
            assert_close(got, ref, xp=xp, err_msg=f"{name} d{what}")


# The integer and bool dtypes every backend has (torch lacks uint16/32/64).
INT_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8")


def _integral(a, dtype):
    """Small integers (or signs, for bool) that ``dtype`` holds exactly, from the float64 sample ``a``."""
    if dtype == "bool":
        return a > 0
    v = np.round(2 * a)
    return (np.abs(v) if dtype == "uint8" else v).astype(dtype)


@pytest.mark.parametrize("name", sorted(CASES))
@fixed_examples(6)
@given(data=st.data())
def test_integer_and_bool_arrays_promote_as_numpy_does(xp, name, data):
    # CS231n's own notebooks pass integer arrays (b = np.array([0, 128]), gamma = np.asarray([3, 4, 5])) and NumPy
    # promotes them. On every backend: the result equals the layer run on the same values as floats, in the
    # floating arguments' dtype, or the device's default float when every argument is integer.
    case = CASES[name]
    floats = {k: v.astype(widest_float(xp)) for k, v in _inputs(case).items()}
    ints = data.draw(st.sets(st.sampled_from(sorted(case.shapes)), min_size=1), label="integer arguments")
    dtypes = {arg: data.draw(st.sampled_from(INT_DTYPES), label=f"{arg}'s dtype") for arg in sorted(ints)}
    given_arrays = {k: _integral(v, dtypes[k]) if k in dtypes else v for k, v in floats.items()}
    namespace = load_namespace(xp)
    if len(ints) == len(floats) and name != "batchnorm_test_mode":  # its running statistics are floats too
        info = namespace.__array_namespace_info__()
        dtype = dtype_name(info.default_dtypes(device=device_under_test(xp))["real floating"])
    else:
        dtype = widest_float(xp)
    as_floats = {k: v.astype(dtype) for k, v in given_arrays.items()}
    out, grads, _ = _run(case, xp, given_arrays, dout_dtype=dtype)
    ref_out, ref_grads, _ = _run(case, xp, as_floats, dout_dtype=dtype)
    assert dtype_name(out.dtype) == dtype, f"{name} with {dtypes}: output {dtype_name(out.dtype)}, expected {dtype}"
    assert_close(out, to_np(ref_out), xp=xp, rtol=0, atol=0, err_msg=f"{name} output with {dtypes}")
    for what, got, ref in zip(case.shapes, grads, ref_grads, strict=False):
        assert dtype_name(got.dtype) == dtype, f"{name}: d{what} is {dtype_name(got.dtype)}, expected {dtype}"
        assert_close(got, to_np(ref), xp=xp, rtol=0, atol=0, err_msg=f"{name} d{what} with {dtypes}")


@pytest.mark.parametrize("name", sorted(name for name, case in CASES.items() if case.backward is not None))
@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_an_integer_dout_is_promoted_to_the_layer_dtype(xp, name, dtype):
    case = CASES[name]
    arrays = {k: v.astype(widest_float(xp)) for k, v in _inputs(case).items()}
    out, cache = case.forward(xp, **{k: to_xp(v, xp) for k, v in arrays.items()})
    # Dropout's cache is CS231n's (dropout_param, mask) with a boolean mask: no float in it, so an integer dout
    # takes the device's default float, as when every argument of a layer is an integer.
    default = load_namespace(xp).__array_namespace_info__().default_dtypes(device=device_under_test(xp))
    expected = default["real floating"] if name == "dropout" else out.dtype
    dout = _integral(_dout(out.shape), dtype)
    grads = case.backward(to_xp(dout, xp), cache)
    _, ref_cache = case.forward(xp, **{k: to_xp(v, xp) for k, v in arrays.items()})
    refs = case.backward(to_xp(dout.astype(dtype_name(expected)), xp), ref_cache)
    for got, ref in zip(*(g if isinstance(g, tuple) else (g,) for g in (grads, refs)), strict=True):
        assert got.dtype == ref.dtype == expected
        assert_close(got, to_np(ref), xp=xp, rtol=0, atol=0, err_msg=f"{name} with a {dtype} dout")


@pytest.mark.parametrize("name", sorted(CASES))
def test_complex_arrays_are_refused_by_name(xp, name):
    case = CASES[name]
    arrays = {k: v.astype(widest_float(xp)) for k, v in _inputs(case).items()}
    for arg in case.shapes:
        bad = dict(arrays, **{arg: arrays[arg].astype("complex64")})
        message = rf"^{arg} must be an array of real numbers \(floating, integer or bool\), got complex64$"
        with pytest.raises(TypeError, match=message):
            case.forward(xp, **{k: to_xp(v, xp) for k, v in bad.items()})


@pytest.mark.parametrize("name", MULTI_INPUT)
def test_mixed_float_precisions_promote_to_float64(xp, name):
    # The standard's type promotion (float32 with float64 is float64) on every backend, torch's matmul included.
    case = CASES[name]
    arrays = _inputs(case)
    for low in case.shapes:
        mixed = {k: to_xp(v, xp, dtype="float32" if k == low else "float64") for k, v in arrays.items()}
        rounded = dict(arrays, **{low: arrays[low].astype(np.float32).astype(np.float64)})
        out, grads, _ = _run(case, xp, mixed)
        ref_out, ref_grads, _ = _run(case, xp, rounded)
        assert_close(out, to_np(ref_out), xp=xp, err_msg=f"{name} with float32 {low}")
        for got, ref in zip(grads, ref_grads, strict=True):
            assert_close(got, to_np(ref), xp=xp, err_msg=f"{name} gradient with float32 {low}")
    # A float32 dout into a float64 layer: the gradients are float64.
    _, grads, _ = _run(case, xp, arrays, dout_dtype="float32")
    assert all(g.dtype == xp.float64 for g in grads)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_list_or_a_number_in_place_of_an_array_is_refused_by_name(xp, name):
    case = CASES[name]
    arrays = {k: to_xp(v, xp) for k, v in _inputs(case).items()}
    for arg in case.shapes:
        for bad in (to_np(arrays[arg]).tolist(), 1.0):
            with pytest.raises(
                TypeError, match=rf"^{arg} must be an array \(NumPy, CuPy, torch, \.\.\.\), got "
            ) as info:
                case.forward(xp, **dict(arrays, **{arg: bad}))
            hint = f"; make one with np.asarray({arg})"
            assert str(info.value).endswith(hint) == isinstance(bad, list), str(info.value)
    if case.backward is not None:
        out, cache = case.forward(xp, **arrays)
        with pytest.raises(TypeError, match=r"^dout must be an array \(NumPy, CuPy, torch, \.\.\.\), got builtins"):
            case.backward(to_np(out).tolist(), cache)


def test_loss_labels_as_a_list_are_refused_by_name(xp):
    x = to_xp(np.zeros((2, 3)), xp)
    for loss in (L.softmax_loss, L.svm_loss):
        with pytest.raises(TypeError, match=r"^y must be an array"):
            loss(x, [0, 1])


def _x4(xp):
    return to_xp(np.random.default_rng(0).standard_normal((2, 4, 5, 5)), xp)


def _ones(xp, n):
    return to_xp(np.ones(n), xp)


def _zeros(xp, n):
    return to_xp(np.zeros(n), xp)


NORM_KEYS = ["eps", "layernorm", "mode", "momentum", "running_mean", "running_var"]

# dict name -> (call(xp, param_dict), a valid dict, the keys it accepts)
PARAM_DICTS = {
    "conv_param": (
        lambda xp, p: L.conv_forward_fast(_x4(xp), to_xp(np.ones((2, 4, 3, 3)), xp), _zeros(xp, 2), p),
        {"stride": 1, "pad": 1},
        ["pad", "stride"],
    ),
    "pool_param": (
        lambda xp, p: L.max_pool_forward_fast(_x4(xp), p),
        {"pool_height": 2, "pool_width": 2, "stride": 2},
        ["pool_height", "pool_width", "stride"],
    ),
    "bn_param": (
        lambda xp, p: L.batchnorm_forward(to_xp(np.eye(3), xp), _ones(xp, 3), _zeros(xp, 3), p),
        {"mode": "train"},
        NORM_KEYS,
    ),
    "ln_param": (
        lambda xp, p: L.layernorm_forward(to_xp(np.eye(3), xp), _ones(xp, 3), _zeros(xp, 3), p),
        {},
        NORM_KEYS,
    ),
    "gn_param": (
        lambda xp, p: L.spatial_groupnorm_forward(_x4(xp), _ones(xp, 4), _zeros(xp, 4), 2, p),
        {},
        NORM_KEYS,
    ),
    "dropout_param": (
        lambda xp, p: L.dropout_forward(_x4(xp), p),
        {"mode": "train", "p": 0.5, "seed": 0},
        ["mask", "mode", "p", "seed"],
    ),
}


@pytest.mark.parametrize("dict_name", sorted(PARAM_DICTS))
@fixed_examples(10)
@given(key=st.one_of(st.text(max_size=12), st.integers(), st.none()))
def test_an_unknown_param_key_is_refused_by_name(xp, dict_name, key):
    call, valid, accepted = PARAM_DICTS[dict_name]
    assume(key not in accepted)
    param = dict(valid)
    param[key] = 1
    # A key close to an accepted one gets a "did you mean" (as difflib judges closeness); the rest is fixed.
    hint = r"( \(did you mean '\w+'\?\))?" if isinstance(key, str) else ""
    message = rf"^{dict_name} has unknown key {re.escape(repr(key))}{hint}; accepted keys: {re.escape(str(accepted))}$"
    with pytest.raises(ValueError, match=message):
        call(xp, param)
    assert param.keys() == {*valid, key}  # nothing written back (no running statistics)


@pytest.mark.parametrize(
    ("dict_name", "param"),
    [
        # Everything CS231n's code and notebooks put in these dicts (FullyConnectedNet hands its bn_params dicts,
        # with their 'mode', to layernorm too).
        ("bn_param", {"mode": "train", "eps": 1e-5, "momentum": 0.9, "layernorm": 0}),
        ("bn_param", {"mode": "test", "running_mean": np.zeros(3), "running_var": np.ones(3)}),
        ("ln_param", {"mode": "train", "eps": 1e-3}),
        ("ln_param", {"mode": "test", "momentum": 0.9, "layernorm": 1}),
        ("gn_param", {"eps": 1e-5, "mode": "train"}),
        ("dropout_param", {"mode": "train", "p": 0.5}),
        ("dropout_param", {"mode": "test", "p": 1, "seed": np.int64(231)}),
        ("dropout_param", {"mode": "train", "p": np.float32(0.5), "seed": None}),
        ("conv_param", {"stride": 1, "pad": 0}),
        ("pool_param", {"pool_height": 2, "pool_width": 2, "stride": np.int64(2)}),
    ],
)
def test_every_key_cs231n_uses_is_accepted(xp, dict_name, param):
    call = PARAM_DICTS[dict_name][0]
    param = {k: to_xp(v, xp) if isinstance(v, np.ndarray) else v for k, v in param.items()}
    out, _ = call(xp, param)
    assert np.isfinite(to_np(out)).all()


BAD_NUMBERS = [
    ("bn_param", "eps", 0.0, ValueError, r"must be a finite number > 0, got 0.0"),
    ("bn_param", "eps", -1e-5, ValueError, r"must be a finite number > 0, got -1e-05"),
    ("ln_param", "eps", float("inf"), ValueError, r"must be a finite number > 0, got inf"),
    ("gn_param", "eps", float("nan"), ValueError, r"must be a finite number > 0, got nan"),
    ("ln_param", "eps", True, TypeError, r"must be a real number, got True"),
    ("gn_param", "eps", "1e-5", TypeError, r"must be a real number, got '1e-5'"),
    ("bn_param", "eps", None, TypeError, r"must be a real number, got None"),
    ("bn_param", "momentum", 1.5, ValueError, r"must be a finite number in \[0, 1\], got 1.5"),
    ("bn_param", "momentum", -0.1, ValueError, r"must be a finite number in \[0, 1\], got -0.1"),
    ("bn_param", "momentum", float("nan"), ValueError, r"must be a finite number in \[0, 1\], got nan"),
    ("bn_param", "momentum", False, TypeError, r"must be a real number, got False"),
    ("bn_param", "momentum", "0.9", TypeError, r"must be a real number, got '0.9'"),
    ("dropout_param", "p", 0, ValueError, r"must be a finite number in \(0, 1\], got 0$"),
    ("dropout_param", "p", 1.5, ValueError, r"must be a finite number in \(0, 1\], got 1.5"),
    ("dropout_param", "p", float("inf"), ValueError, r"must be a finite number in \(0, 1\], got inf"),
    ("dropout_param", "p", True, TypeError, r"must be a real number, got True"),
    ("dropout_param", "p", "0.5", TypeError, r"must be a real number, got '0.5'"),
    ("dropout_param", "seed", "0", TypeError, r"must be an int >= 0 or None, got '0'"),
    ("dropout_param", "seed", 1.5, TypeError, r"must be an int >= 0 or None, got 1.5"),
    ("dropout_param", "seed", True, TypeError, r"must be an int >= 0 or None, got True"),
    ("dropout_param", "seed", np.float64(2.0), TypeError, r"must be an int >= 0 or None, got "),
    ("dropout_param", "seed", -1, ValueError, r"must be an int >= 0 or None, got -1"),
]


@pytest.mark.parametrize(("dict_name", "key", "value", "error", "match"), BAD_NUMBERS)
def test_bad_numbers_in_param_dicts_are_refused_by_name(xp, dict_name, key, value, error, match):
    call, valid, _ = PARAM_DICTS[dict_name]
    with pytest.raises(error, match=rf"^{dict_name}\['{key}'\]( \(.*\))? {match}"):
        call(xp, dict(valid, **{key: value}))


EMPTY = [
    ("batchnorm", (0, 3), "N"),
    ("spatial batchnorm", (0, 3, 2, 2), "N, H, W"),
    ("spatial batchnorm", (2, 3, 2, 0), "N, H, W"),
    ("layernorm", (2, 0), "D"),
    ("spatial groupnorm", (2, 4, 0, 3), "C/G, H, W"),
]


def _norm_call(layer, x, xp, bn_param):
    C = x.shape[1]
    gamma, beta = _ones(xp, C), _zeros(xp, C)
    if layer == "batchnorm":
        return L.batchnorm_forward(x, gamma, beta, bn_param)
    if layer == "spatial batchnorm":
        return L.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    if layer == "layernorm":
        return L.layernorm_forward(x, gamma, beta, bn_param)
    return L.spatial_groupnorm_forward(x, gamma, beta, 2, bn_param)


@pytest.mark.parametrize(("layer", "shape", "axes"), EMPTY)
def test_an_empty_reduction_is_refused_before_running_stats_change(xp, layer, shape, axes):
    C = shape[1]
    mean, var = _zeros(xp, C), _ones(xp, C)
    bn_param = {"mode": "train", "running_mean": mean, "running_var": var}
    message = rf"^x must have at least one value along the axes {layer} averages over \({axes}\), got shape "
    with pytest.raises(ValueError, match=message + re.escape(str(shape))):
        _norm_call(layer, to_xp(np.zeros(shape), xp), xp, bn_param)
    assert bn_param["running_mean"] is mean and bn_param["running_var"] is var
    assert_close(mean, np.zeros(C), xp=xp)
    assert_close(var, np.ones(C), xp=xp)


def test_an_empty_batch_is_fine_where_nothing_is_averaged_over_it(xp):
    # Test-mode batchnorm and layernorm normalize each sample on its own: an empty batch gives an empty output.
    bn_param = {"mode": "test", "running_mean": _zeros(xp, 3), "running_var": _ones(xp, 3)}
    x = to_xp(np.zeros((0, 3)), xp)
    assert tuple(_norm_call("batchnorm", x, xp, bn_param)[0].shape) == (0, 3)
    assert tuple(_norm_call("layernorm", x, xp, {})[0].shape) == (0, 3)
    assert tuple(_norm_call("spatial groupnorm", to_xp(np.zeros((0, 4, 2, 2)), xp), xp, {})[0].shape) == (0, 4, 2, 2)


def _bad_bn_call(xp, defect, bn_param):
    """Make the batchnorm call named ``defect``, which must raise."""
    x, g, b = to_xp(np.eye(3), xp), _ones(xp, 3), _zeros(xp, 3)
    x4 = to_xp(np.ones((2, 3, 2, 2)), xp)
    complex_ones = to_xp(np.ones(3, dtype=np.complex64), xp)
    calls = {
        "complex x": lambda p: L.batchnorm_forward(to_xp(np.eye(3, dtype=np.complex64), xp), g, b, p),
        "complex gamma": lambda p: L.batchnorm_forward(x, complex_ones, b, p),
        "list beta": lambda p: L.batchnorm_forward(x, g, [0.0, 0.0, 0.0], p),
        "empty batch": lambda p: L.batchnorm_forward(to_xp(np.zeros((0, 3)), xp), g, b, p),
        "empty spatial batch": lambda p: L.spatial_batchnorm_forward(to_xp(np.zeros((0, 3, 2, 2)), xp), g, b, p),
        "wrong gamma shape": lambda p: L.spatial_batchnorm_forward(x4, _ones(xp, 2), _zeros(xp, 2), p),
        "unknown key": lambda p: L.batchnorm_forward(x, g, b, dict(p, momentun=0.5)),
        "bad eps": lambda p: L.batchnorm_forward(x, g, b, dict(p, eps=0)),
        "complex running_var": lambda p: L.batchnorm_forward(x, g, b, dict(p, running_var=complex_ones)),
        "sandwich with complex gamma": lambda p: lu.affine_bn_relu_forward(x, x, b, complex_ones, b, p),
        "conv sandwich with a bad bn key": lambda p: lu.conv_bn_relu_forward(
            x4, to_xp(np.ones((3, 3, 1, 1)), xp), b, g, b, {"stride": 1, "pad": 0}, dict(p, epsilon=1e-3)
        ),
    }
    return calls[defect](bn_param)


_REAL = r"must be an array of real numbers \(floating, integer or bool\), got .*complex64"
_BN_KEYS = r"; accepted keys: \['eps', 'layernorm', 'mode', 'momentum', 'running_mean', 'running_var'\]"
# defect -> (the exception, the start of its message): the call is refused for that defect, not another.
BN_DEFECTS = {
    "complex x": (TypeError, rf"^x {_REAL}"),
    "complex gamma": (TypeError, rf"^gamma {_REAL}"),
    "list beta": (TypeError, r"^beta must be an array \(NumPy, CuPy, torch, \.\.\.\), got builtins\.list"),
    "empty batch": (ValueError, r"^x must have at least one value along the axes batchnorm averages over \(N\)"),
    "empty spatial batch": (
        ValueError, r"^x must have at least one value along the axes spatial batchnorm averages over \(N, H, W\)"
    ),
    "wrong gamma shape": (ValueError, r"^gamma must have shape \(3,\) or \(1, 3, 1, 1\) .*, got \(2,\)"),
    "unknown key": (ValueError, rf"^bn_param has unknown key 'momentun' \(did you mean 'momentum'\?\){_BN_KEYS}"),
    "bad eps": (ValueError, r"^bn_param\['eps'\] must be a finite number > 0, got 0"),
    "complex running_var": (TypeError, rf"^bn_param\['running_var'\] {_REAL}"),
    "sandwich with complex gamma": (TypeError, rf"^gamma {_REAL}"),
    "conv sandwich with a bad bn key": (
        ValueError, rf"^bn_param has unknown key 'epsilon' \(did you mean 'eps'\?\){_BN_KEYS}"
    ),
}  # fmt: skip


@pytest.mark.parametrize("defect", BN_DEFECTS)
def test_a_failed_batchnorm_call_leaves_the_running_statistics_alone(xp, defect):
    mean, var = to_xp(np.array([1.0, 2.0, 3.0]), xp), _ones(xp, 3)
    bn_param = {"mode": "train", "running_mean": mean, "running_var": var}
    error, match = BN_DEFECTS[defect]
    with pytest.raises(error, match=match):
        _bad_bn_call(xp, defect, bn_param)
    assert bn_param.keys() == {"mode", "running_mean", "running_var"}
    assert bn_param["running_mean"] is mean and bn_param["running_var"] is var
    assert_close(mean, np.array([1.0, 2.0, 3.0]), xp=xp)


_KEEP_P = r"^dropout_param\['p'\] \(the keep probability\) must be a finite number in \(0, 1\], got "
# defect -> (x, dropout_param, the exception, the start of its message)
BAD_DROPOUT = {
    "complex x": (np.ones((3, 3), dtype=np.complex64), {"mode": "train", "p": 0.5}, TypeError, rf"^x {_REAL}"),
    "complex x with a seed": (
        np.ones((3, 3), dtype=np.complex64), {"mode": "test", "p": 0.5, "seed": 3}, TypeError, rf"^x {_REAL}"
    ),
    "list x with a seed": (
        [[1.0, 2.0]], {"mode": "train", "p": 0.5, "seed": 3}, TypeError,
        r"^x must be an array \(NumPy, CuPy, torch, \.\.\.\), got builtins\.list; make one with np\.asarray\(x\)",
    ),
    "bad p with a seed": (np.ones((3, 3)), {"mode": "train", "p": 2.0, "seed": 3}, ValueError, _KEEP_P + "2"),
    "unknown key": (
        np.ones((3, 3)), {"mode": "train", "p": 0.5, "sed": 1}, ValueError,
        r"^dropout_param has unknown key 'sed' \(did you mean 'seed'\?\); "
        r"accepted keys: \['mask', 'mode', 'p', 'seed'\]",
    ),
    "bad p": (np.ones((3, 3)), {"mode": "train", "p": 0.0}, ValueError, _KEEP_P + "0"),
    "bad mode": (
        np.ones((3, 3)), {"mode": "eval", "p": 0.5}, ValueError,
        r"^dropout_param\['mode'\] must be 'train' or 'test', got 'eval'",
    ),
    "bad seed": (
        np.ones((3, 3)), {"mode": "train", "p": 0.5, "seed": "1"}, TypeError,
        r"^dropout_param\['seed'\] must be an int >= 0 or None, got '1'",
    ),
}  # fmt: skip


@pytest.mark.parametrize("defect", sorted(BAD_DROPOUT))
def test_a_failed_dropout_call_draws_no_random_numbers_and_does_not_reseed(xp, defect):
    x, param, error, match = BAD_DROPOUT[defect]
    before = np.random.get_state()
    with pytest.raises(error, match=match):
        L.dropout_forward(x if isinstance(x, list) else to_xp(x, xp), param)
    after = np.random.get_state()
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2:] == before[2:]
