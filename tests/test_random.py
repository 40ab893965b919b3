"""Host random numbers (xpnet._random): seeded draws are identical on every backend, unseeded ones follow NumPy's
global state as CS231n's code does."""

import numpy as np

from xpnet._random import random_normal, random_uniform

from helpers import to_np, to_xp


def test_seeded_random_is_identical_on_every_backend(xp):
    like = to_xp(np.zeros(1), xp)
    u = random_uniform((5, 4), like=like, seed=7)
    n = random_normal((5, 4), like=like, seed=7)
    np.testing.assert_array_equal(to_np(u), np.random.default_rng(7).random((5, 4)))
    np.testing.assert_array_equal(to_np(n), np.random.default_rng(7).standard_normal((5, 4)))


def test_unseeded_random_follows_numpy_global_seed(xp):
    like = to_xp(np.zeros(1), xp)
    np.random.seed(231)
    a = to_np(random_uniform((3,), like=like))
    np.random.seed(231)
    b = to_np(random_uniform((3,), like=like))
    np.testing.assert_array_equal(a, b)
