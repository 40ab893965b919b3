"""The window scatter (the adjoint of the im2col gather, used by convolution and overlapping pooling backward
passes) adds the same numbers in the same order eagerly and under a compiler: the padded sum a compiler gets
equals the in-place accumulation on every backend and device."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from xpnet.layers._windows import _scatter_by_padding, scatter_windows

from helpers import fixed_examples, to_np, to_xp


@fixed_examples(15)
@given(
    lead=st.integers(1, 3), kh=st.integers(1, 4), kw=st.integers(1, 4), stride=st.integers(1, 3),
    out_h=st.integers(1, 4), out_w=st.integers(1, 4), extra_h=st.integers(0, 2), extra_w=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_the_padded_sum_equals_the_eager_scatter(xp, lead, kh, kw, stride, out_h, out_w, extra_h, extra_w, seed):
    # Rows and columns past the last window (extra_h, extra_w) stay zero, as when the stride does not divide.
    shape = (2, lead, stride * (out_h - 1) + kh + extra_h, stride * (out_w - 1) + kw + extra_w)
    rng = np.random.default_rng(seed)
    windows = [to_xp(rng.standard_normal((2, lead, out_h, out_w)), xp, dtype="float32") for _ in range(kh * kw)]
    eager = scatter_windows(windows, shape, kh, kw, stride, xp=xp)
    padded = _scatter_by_padding(windows, shape, kh, kw, stride, xp=xp)
    assert tuple(padded.shape) == tuple(eager.shape) == shape
    assert padded.dtype == eager.dtype == xp.float32
    np.testing.assert_array_equal(to_np(padded), to_np(eager))
