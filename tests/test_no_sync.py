"""Zero host syncs inside a training step: ``model.loss`` and the update rules run on torch's ``meta`` device.

A meta tensor has a shape, a dtype and a device but no values, so every host read of one (``float(x)``,
``x.item()``, ``bool(x)``, ``int(x)``, NumPy conversion) raises. A step that runs there end to end reads nothing
back from the device: on a GPU it queues its kernels and never waits for them. Logging syncs belong to the Solver,
which copies losses to the host in batches (see tests/test_solver.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import optim
from xpnet.classifiers import FullyConnectedNet, ThreeLayerConvNet

from helpers import requires_torch, torch

pytestmark = requires_torch

N, D, C = 5, 12, 4
FC_CONFIGS = {
    "plain": {},
    "batchnorm": {"normalization": "batchnorm"},
    "layernorm": {"normalization": "layernorm"},
    "dropout": {"dropout_keep_ratio": 0.5},
    "batchnorm-seeded-dropout": {"normalization": "batchnorm", "dropout_keep_ratio": 0.5, "seed": 1},
    "reg": {"reg": 0.1},
}
RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")


def _meta():
    return torch.device("meta")


def _build(name: str):
    np.random.seed(0)  # weights are drawn on the host, then placed on the meta device (their values are dropped)
    if name == "cnn":
        model = ThreeLayerConvNet(
            (3, 8, 8), num_filters=4, filter_size=3, hidden_dim=10, num_classes=C, reg=0.1, xp="torch", device=_meta()
        )
        X = torch.empty((N, 3, 8, 8), device=_meta())
    else:
        model = FullyConnectedNet([10, 7], input_dim=D, num_classes=C, xp="torch", device=_meta(), **FC_CONFIGS[name])
        X = torch.empty((N, D), device=_meta())
    return model, X, torch.empty((N,), dtype=torch.int64, device=_meta())


def test_meta_tensors_refuse_every_host_read():
    """The premise: on meta, each way of reading a value back raises (so the tests below would catch one)."""
    x = torch.empty((), device=_meta())
    for read in (float, int, bool, lambda t: t.item(), np.asarray, lambda t: t.tolist()):
        with pytest.raises((RuntimeError, NotImplementedError, TypeError)):
            read(x)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", [*FC_CONFIGS, "cnn"])
def test_training_step_reads_nothing_back(name, rule):
    model, X, y = _build(name)
    update = getattr(optim, rule)
    configs = {p: {} for p in model.params}
    for _ in range(2):  # the second step reads the optimizer state and running statistics the first one wrote
        loss, grads = model.loss(X, y)
        for p, w in model.params.items():
            model.params[p], configs[p] = update(w, grads[p], configs[p])
    assert loss.device.type == "meta" and tuple(loss.shape) == ()
    assert {p: tuple(g.shape) for p, g in grads.items()} == {p: tuple(w.shape) for p, w in model.params.items()}
    assert all(w.device.type == "meta" for w in model.params.values())


@pytest.mark.parametrize("name", [*FC_CONFIGS, "cnn"])
def test_test_mode_scores_read_nothing_back(name):
    model, X, y = _build(name)
    model.loss(X, y)  # a training pass first: batchnorm's test mode then reads its running statistics
    scores = model.loss(X)
    assert scores.device.type == "meta" and tuple(scores.shape) == (N, C)
