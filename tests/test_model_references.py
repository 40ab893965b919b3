"""Model-level float64 references: FullyConnectedNet (every normalization, seeded dropout, L2) and ThreeLayerConvNet
(L2) against the same networks written independently with torch.nn.functional and differentiated by autograd.

The layer tests check each piece; these check how the models assemble them: which layers get dropout, which weights
the L2 term covers and with which factor (CS231n's ``0.5 * reg * sum(W**2)`` over every weight matrix, gradient
``reg * W``). Every param is drawn at random (biases, gamma and beta too) so no term vanishes by construction.
"""

import numpy as np
import pytest

from xpnet.classifiers import FullyConnectedNet, ThreeLayerConvNet

from helpers import F, device_under_test, require_dtype, requires_torch, to_np, to_xp, torch

pytestmark = requires_torch

N, D, HIDDEN, C = 5, 7, [6, 9], 4
REG = 0.3
KEEP, SEED = 0.7, 123
CNN_INPUT, CNN_FILTERS, CNN_FILTER_SIZE, CNN_HIDDEN = (3, 8, 8), 4, 3, 6
# Both sides compute in float64 from the same inputs; only the order of the roundings differs.
RTOL = 1e-10


def _random_params(model, rng) -> dict[str, np.ndarray]:
    """Replace every param of ``model`` with standard normal values (gamma around 1); returns them on the host."""
    host = {}
    for key, value in model.params.items():
        shape = tuple(value.shape)
        host[key] = rng.standard_normal(shape) * (0.3 if key.startswith("gamma") else 0.5)
        if key.startswith("gamma"):
            host[key] += 1.0
        model.params[key] = to_xp(host[key], model.xp)
    return host


def _leaves(host: dict[str, np.ndarray]) -> dict:
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in host.items()}


def _l2(p: dict, weights) -> "torch.Tensor":
    """CS231n's L2 term: half of reg times the squared weights, weight matrices only (no biases, gamma, beta)."""
    return 0.5 * REG * sum((p[w] ** 2).sum() for w in weights)


def _dropout_mask(shape) -> np.ndarray:
    """The mask of a seeded CS231n dropout layer: ``np.random.seed(seed); np.random.rand(*shape) < p``. Each layer
    reseeds, so every hidden layer draws from a fresh state."""
    return np.random.RandomState(SEED).random_sample(shape) < KEEP


def _torch_fc(host, X, y, *, normalization, dropout, eps=1e-5):
    """Loss and gradients of FullyConnectedNet written with torch.nn.functional."""
    p = _leaves(host)
    num_layers = len(HIDDEN) + 1
    h = torch.tensor(X)
    for i in range(1, num_layers):
        h = F.linear(h, p[f"W{i}"].T, p[f"b{i}"])
        if normalization == "batchnorm":
            h = F.batch_norm(h, None, None, p[f"gamma{i}"], p[f"beta{i}"], training=True, eps=eps)
        elif normalization == "layernorm":
            h = F.layer_norm(h, h.shape[1:], p[f"gamma{i}"], p[f"beta{i}"], eps=eps)
        h = F.relu(h)
        if dropout:
            mask = _dropout_mask(tuple(h.shape))
            assert 0 < mask.sum() < mask.size, "a mask that keeps all or nothing tests nothing"
            h = h * torch.tensor(mask, dtype=torch.float64) / KEEP
    scores = F.linear(h, p[f"W{num_layers}"].T, p[f"b{num_layers}"])
    loss = F.cross_entropy(scores, torch.tensor(y)) + _l2(p, [f"W{i}" for i in range(1, num_layers + 1)])
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in p.items()}


def _torch_cnn(host, X, y):
    """Loss and gradients of ThreeLayerConvNet written with torch.nn.functional."""
    p = _leaves(host)
    h = F.conv2d(torch.tensor(X), p["W1"], p["b1"], stride=1, padding=(CNN_FILTER_SIZE - 1) // 2)
    h = F.max_pool2d(F.relu(h), kernel_size=2, stride=2).flatten(1)
    h = F.relu(F.linear(h, p["W2"].T, p["b2"]))
    scores = F.linear(h, p["W3"].T, p["b3"])
    loss = F.cross_entropy(scores, torch.tensor(y)) + _l2(p, ["W1", "W2", "W3"])
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in p.items()}


def _assert_matches(model, loss, grads, ref_loss, ref_grads):
    assert tuple(loss.shape) == (), f"loss must be a 0-d array, got shape {tuple(loss.shape)}"
    np.testing.assert_allclose(float(to_np(loss)), ref_loss, rtol=RTOL, atol=0, err_msg="loss")
    assert sorted(grads) == sorted(model.params), f"grads keys {sorted(grads)} != params keys {sorted(model.params)}"
    for key, ref in ref_grads.items():
        got = to_np(grads[key])
        assert got.shape == tuple(model.params[key].shape) == ref.shape, f"d{key} shape {got.shape} != {ref.shape}"
        assert got.dtype == np.float64, f"d{key} dtype {got.dtype}"
        # atol for entries that cancel to ~0: roundoff of the largest entry of this gradient.
        atol = 1e-12 * max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=atol, err_msg=f"d{key}")


@pytest.mark.parametrize("dropout", [False, True], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_matches_torch_reference(xp, normalization, dropout):
    require_dtype(xp, "float64")
    rng = np.random.default_rng(231)
    model = FullyConnectedNet(
        HIDDEN,
        input_dim=D,
        num_classes=C,
        dropout_keep_ratio=KEEP if dropout else 1,
        normalization=normalization,
        reg=REG,
        dtype="float64",
        seed=SEED if dropout else None,
        xp=xp,
        device=device_under_test(xp),
    )
    host = _random_params(model, rng)
    X, y = rng.standard_normal((N, D)), rng.integers(C, size=N)
    # The model reseeds NumPy's global state when its dropout is seeded: keep the suite's state as it was.
    state = np.random.get_state()
    try:
        loss, grads = model.loss(to_xp(X, xp), to_xp(y, xp))
    finally:
        np.random.set_state(state)
    ref_loss, ref_grads = _torch_fc(host, X, y, normalization=normalization, dropout=dropout)
    _assert_matches(model, loss, grads, ref_loss, ref_grads)


def test_three_layer_convnet_matches_torch_reference(xp):
    require_dtype(xp, "float64")
    rng = np.random.default_rng(231)
    model = ThreeLayerConvNet(
        input_dim=CNN_INPUT,
        num_filters=CNN_FILTERS,
        filter_size=CNN_FILTER_SIZE,
        hidden_dim=CNN_HIDDEN,
        num_classes=C,
        reg=REG,
        dtype="float64",
        xp=xp,
        device=device_under_test(xp),
    )
    host = _random_params(model, rng)
    # Continuous random inputs: no ties in a max-pool window, so the pooled argmax is unambiguous on both sides.
    X, y = rng.standard_normal((3, *CNN_INPUT)), rng.integers(C, size=3)
    loss, grads = model.loss(to_xp(X, xp), to_xp(y, xp))
    ref_loss, ref_grads = _torch_cnn(host, X, y)
    _assert_matches(model, loss, grads, ref_loss, ref_grads)
