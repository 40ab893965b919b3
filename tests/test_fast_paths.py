"""The speed paths of a training step (issue 9) give what the readable references give: the convolution backward
without its input gradient, the conv - relu - pool sandwich against the naive layers composed, on every backend and
over random geometries with ties and NaNs; and ``benchmarks/bench_step.py --quick`` runs."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xpnet.classifiers.cnn import ThreeLayerConvNet
from xpnet.classifiers.fc_net import FullyConnectedNet
from xpnet.layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_ln_relu_backward,
    affine_ln_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from xpnet.layers import (
    affine_backward,
    affine_forward,
    conv_backward_fast,
    conv_backward_naive,
    conv_forward_fast,
    conv_forward_naive,
    max_pool_backward_naive,
    max_pool_forward_naive,
    relu_backward,
    relu_forward,
)
from xpnet.layers.conv import conv_backward_channels_first, conv_forward_channels_first

from helpers import assert_close, device_under_test, fixed_examples, require_dtype, to_np, to_xp

ROOT = Path(__file__).resolve().parents[1]
# The references are the naive loops run on NumPy (fast enough there; on JAX or array_api_strict each of their
# per-pixel updates costs a dispatch), the fast paths run on every backend. Few examples: JAX compiles every op
# anew for each new shape (about 2 s an example here).
_SETTINGS = fixed_examples(6)


def _problem(seed, n, c, f, h, w, k, *, ties=False, nans=0):
    """x, w, b as float64 NumPy arrays; with ``ties`` small integers (so conv outputs and pool windows tie, and
    many are <= 0 for the ReLU), with ``nans`` that many NaNs put into x."""
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(-1, 2, size=(n, c, h, w)).astype(np.float64)
        wt = rng.integers(-1, 2, size=(f, c, k, k)).astype(np.float64)
        b = rng.integers(-1, 2, size=f).astype(np.float64)
    else:
        x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, k, k)), rng.standard_normal(f)
    for _ in range(nans):
        x[tuple(rng.integers(0, s) for s in x.shape)] = np.nan
    return x, wt, b


def _naive_conv_relu_pool(x, w, b, conv_param, pool_param, dout):
    """Forward output and (dx, dw, db) of the naive layers composed, CS231n's order: conv, relu, pool."""
    a, conv_cache = conv_forward_naive(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_naive(s, pool_param)
    ds = max_pool_backward_naive(dout, pool_cache)
    return out, conv_backward_naive(relu_backward(ds, relu_cache), conv_cache)


def _assert_same(got, ref, xp, err_msg):
    """Equal values, and NaN exactly where the reference has NaN."""
    np.testing.assert_array_equal(np.isnan(to_np(got)), np.isnan(ref), err_msg=f"{err_msg}: NaN positions")
    assert_close(got, ref, xp=xp, err_msg=err_msg)


@_SETTINGS
@given(
    n=st.integers(1, 2), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
    k=st.integers(1, 4), stride=st.integers(1, 3), pad=st.integers(0, 2), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_conv_backward_without_input_gradient_gives_the_same_dw_db(xp, n, c, f, h, w, k, stride, pad, seed):
    x, wt, b = (to_xp(a, xp) for a in _problem(seed, n, c, f, h, w, k))
    conv_param = {"stride": stride, "pad": pad}
    if k > h + 2 * pad or k > w + 2 * pad:  # a filter larger than the padded input is refused, as in test_conv.py
        with pytest.raises(ValueError, match=r"is larger than the (padded )?input"):
            conv_forward_fast(x, wt, b, conv_param)
        return
    out, cache = conv_forward_fast(x, wt, b, conv_param)
    dout = to_xp(np.random.default_rng(seed + 1).standard_normal(tuple(out.shape)), xp)
    dx, dw, db = conv_backward_fast(dout, cache, input_grad=False)
    assert dx is None
    x_np, w_np, b_np = (to_np(a) for a in (x, wt, b))
    _, ref_dw, ref_db = conv_backward_naive(to_np(dout), conv_forward_naive(x_np, w_np, b_np, conv_param)[1])
    assert_close(dw, ref_dw, xp=xp)
    assert_close(db, ref_db, xp=xp)


def test_input_grad_is_keyword_only_and_checked(xp):
    x, wt, b = (to_xp(a, xp) for a in _problem(0, 1, 1, 1, 3, 3, 3))
    out, cache = conv_forward_fast(x, wt, b, {"stride": 1, "pad": 1})
    with pytest.raises(TypeError):
        conv_backward_fast(out, cache, False)
    with pytest.raises(TypeError, match=r"^input_grad must be True or False, got 0"):
        conv_backward_fast(out, cache, input_grad=0)


@_SETTINGS
@given(
    n=st.integers(1, 2), c=st.integers(1, 3), f=st.integers(1, 3), h=st.integers(2, 8), w=st.integers(2, 8),
    k=st.sampled_from([1, 3, 5]), pool=st.sampled_from([(2, 2, 2), (3, 3, 2), (2, 1, 1), (3, 2, 3)]),
    ties=st.booleans(), nans=st.integers(0, 2), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_conv_relu_pool_matches_the_naive_layers_composed(xp, n, c, f, h, w, k, pool, ties, nans, seed):
    # Ties (integer inputs) and windows of ReLU zeros exercise the first-maximum rule; NaNs must land where the
    # naive layers put them (a window holding NaN sends its gradient to its first NaN, as argmax does).
    ph, pw, s = pool
    x_np, w_np, b_np = _problem(seed, n, c, f, h, w, k, ties=ties, nans=nans)
    x, wt, b = (to_xp(a, xp) for a in (x_np, w_np, b_np))
    conv_param = {"stride": 1, "pad": (k - 1) // 2}
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": s}
    if ph > h or pw > w:  # the "same" convolution keeps h x w: a larger pool window is refused
        with pytest.raises(ValueError, match=r"^pool window (height|width) \d is larger than the input"):
            conv_relu_pool_forward(x, wt, b, conv_param, dict(pool_param))
        return
    out, cache = conv_relu_pool_forward(x, wt, b, conv_param, dict(pool_param))
    dout_np = np.random.default_rng(seed + 1).standard_normal(tuple(out.shape))
    dout = to_xp(dout_np, xp)
    ref_out, ref_grads = _naive_conv_relu_pool(x_np, w_np, b_np, conv_param, pool_param, dout_np)
    _assert_same(out, ref_out, xp, "out")
    for name, got, ref in zip(("dx", "dw", "db"), conv_relu_pool_backward(dout, cache), ref_grads, strict=True):
        _assert_same(got, ref, xp, name)
    dx, dw, db = conv_relu_pool_backward(dout, cache, input_grad=False)
    assert dx is None
    _assert_same(dw, ref_grads[1], xp, "dw without dx")
    _assert_same(db, ref_grads[2], xp, "db without dx")


def test_channels_first_convolution_is_the_fast_one_without_bias_and_transposed(xp):
    # conv_relu_pool runs on these: the (F, N, H', W') result before the bias, and its backward pass taking the
    # gradient in that layout, must agree with the CS231n-facing pair.
    x, wt, b = (to_xp(a, xp) for a in _problem(5, 2, 3, 4, 6, 5, 3))
    conv_param = {"stride": 2, "pad": 1}
    out, cache = conv_forward_fast(x, wt, b, conv_param)
    a, cf_cache = conv_forward_channels_first(x, wt, b, conv_param)
    assert tuple(a.shape) == (4, 2, 3, 3)
    assert_close(xp.permute_dims(a, (1, 0, 2, 3)) + xp.reshape(b, (1, -1, 1, 1)), to_np(out), xp=xp)
    dout_np = np.random.default_rng(6).standard_normal(tuple(out.shape))
    dx, dw, _ = conv_backward_fast(to_xp(dout_np, xp), cache)
    da = to_xp(np.ascontiguousarray(dout_np.transpose(1, 0, 2, 3)), xp)
    cf_dx, cf_dw = conv_backward_channels_first(da, cf_cache)
    assert_close(cf_dx, to_np(dx), xp=xp)
    assert_close(cf_dw, to_np(dw), xp=xp)
    assert conv_backward_channels_first(da, cf_cache, input_grad=False)[0] is None
    shapes = r"^da must have the forward output's shape \(4, 2, 3, 3\), got \(2, 4, 3, 3\)"
    with pytest.raises(ValueError, match=shapes):
        conv_backward_channels_first(to_xp(dout_np, xp), cf_cache)
    with pytest.raises(TypeError, match=r"^input_grad must be True or False, got None"):
        conv_backward_channels_first(da, cf_cache, input_grad=None)


def _sandwich_cases(xp, rng):
    """(name, forward, backward, inputs) for every backward pass with ``input_grad``."""
    x4, x2 = (to_xp(rng.standard_normal(shape), xp) for shape in ((2, 2, 5, 5), (4, 6)))
    w4, b4, w2, b2 = (to_xp(rng.standard_normal(shape), xp) for shape in ((3, 2, 3, 3), (3,), (6, 5), (5,)))
    gamma3, beta3, gamma5, beta5 = (to_xp(rng.standard_normal(n), xp) for n in (3, 3, 5, 5))
    conv_param, pool_param = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    bn2, bn4 = (
        (x2, w2, b2, gamma5, beta5, {"mode": "train"}),
        (x4, w4, b4, gamma3, beta3, conv_param, {"mode": "train"}),
    )
    return [
        ("affine", affine_forward, affine_backward, (x2, w2, b2)),
        ("affine_relu", affine_relu_forward, affine_relu_backward, (x2, w2, b2)),
        ("affine_bn_relu", affine_bn_relu_forward, affine_bn_relu_backward, bn2),
        ("affine_ln_relu", affine_ln_relu_forward, affine_ln_relu_backward, (x2, w2, b2, gamma5, beta5, {})),
        ("conv", conv_forward_fast, conv_backward_fast, (x4, w4, b4, conv_param)),
        ("conv_relu", conv_relu_forward, conv_relu_backward, (x4, w4, b4, conv_param)),
        ("conv_bn_relu", conv_bn_relu_forward, conv_bn_relu_backward, bn4),
        ("conv_relu_pool", conv_relu_pool_forward, conv_relu_pool_backward, (x4, w4, b4, conv_param, pool_param)),
    ]  # fmt: skip


def test_every_backward_pass_can_skip_the_input_gradient(xp):
    # A network's first layer needs no dx: input_grad=False gives None there and the same parameter gradients.
    rng = np.random.default_rng(4)
    for name, forward, backward, inputs in _sandwich_cases(xp, rng):
        out, cache = forward(*inputs)
        dout = to_xp(rng.standard_normal(tuple(out.shape)), xp)
        full = backward(dout, cache)
        skipped = backward(dout, cache, input_grad=False)
        assert full[0] is not None and skipped[0] is None, name
        for got, ref in zip(skipped[1:], full[1:], strict=True):
            assert_close(got, to_np(ref), xp=xp, err_msg=name)
        with pytest.raises(TypeError, match=r"^input_grad must be True or False, got 0"):
            backward(dout, cache, input_grad=0)


@pytest.mark.parametrize(
    ("make", "products"),
    [
        # Forward one product per layer, backward one dw per layer and one dx per layer but the first.
        (lambda: FullyConnectedNet([5, 4], input_dim=6, num_classes=3, xp="torch"), 8),
        (lambda: FullyConnectedNet([5, 4], input_dim=6, num_classes=3, normalization="batchnorm", xp="torch"), 8),
        (lambda: FullyConnectedNet([5, 4], input_dim=6, num_classes=3, normalization="layernorm", xp="torch"), 8),
        (lambda: ThreeLayerConvNet(input_dim=(2, 6, 6), num_filters=3, filter_size=3, hidden_dim=4, xp="torch"), 8),
    ],
    ids=["fc-2", "fc-2-batchnorm", "fc-2-layernorm", "cnn"],
)
def test_models_compute_no_gradient_for_their_input(make, products):
    # Counted as the matrix products torch dispatches in one loss-and-gradients call.
    torch = pytest.importorskip("torch")
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountProducts(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm):
                CountProducts.count += 1
            return func(*args, **(kwargs or {}))

    np.random.seed(0)
    model = make()
    shape = (2, *getattr(model, "input_dim", (6,))) if isinstance(model, ThreeLayerConvNet) else (2, 6)
    X = np.random.default_rng(0).standard_normal(shape)
    with CountProducts():
        model.loss(X, np.array([0, 1]))
    assert CountProducts.count == products


def test_cnn_gradients_are_those_of_the_layers_composed(xp):
    # The model skips its input gradient and fuses ReLU into the pooled domain; its gradients must still be the
    # plain layer sequence's.
    require_dtype(xp, "float64")
    np.random.seed(0)
    model = ThreeLayerConvNet(
        input_dim=(2, 6, 6), num_filters=3, filter_size=3, hidden_dim=4, num_classes=3, weight_scale=0.5,
        dtype="float64", xp=xp, device=device_under_test(xp),
    )  # fmt: skip
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((4, 2, 6, 6)), rng.integers(0, 3, 4)
    loss, grads = model.loss(to_xp(X, xp), to_xp(y, xp))

    from xpnet.layers import affine_backward, affine_forward, softmax_loss

    p = {k: to_np(v) for k, v in model.params.items()}
    conv_param, pool_param = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    a, conv_cache = conv_forward_naive(X, p["W1"], p["b1"], conv_param)
    r, relu1 = relu_forward(a)
    pooled, pool_cache = max_pool_forward_naive(r, pool_param)
    h, aff1 = affine_forward(pooled, p["W2"], p["b2"])
    hr, relu2 = relu_forward(h)
    scores, aff2 = affine_forward(hr, p["W3"], p["b3"])
    ref_loss, dscores = softmax_loss(scores, y)
    dhr, dW3, db3 = affine_backward(dscores, aff2)
    dpooled, dW2, db2 = affine_backward(relu_backward(dhr, relu2), aff1)
    ds = max_pool_backward_naive(dpooled, pool_cache)
    _, dW1, db1 = conv_backward_naive(relu_backward(ds, relu1), conv_cache)
    assert_close(loss, np.asarray(ref_loss), xp=xp)
    for name, ref in {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}.items():
        assert_close(grads[name], ref, xp=xp, err_msg=name)
