"""The portable .npz container: a round trip on any backend, written atomically, a missing file named."""

import numpy as np
import pytest

from xpnet._npz import read_npz, write_npz

from helpers import to_xp


def test_write_read_npz_roundtrip_is_portable(xp, tmp_path):
    a = to_xp(np.arange(6.0).reshape(2, 3), xp)
    path = tmp_path / "sub" / "ckpt.npz"
    write_npz(path, {"W1": a, "t": 3}, {"epoch": 2, "name": "x"})
    arrays, meta = read_npz(path)
    assert meta == {"epoch": 2, "name": "x"}
    np.testing.assert_array_equal(arrays["W1"], np.arange(6.0).reshape(2, 3))
    assert int(arrays["t"]) == 3
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.npz"]  # no temporary file left behind


def test_read_npz_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        read_npz(tmp_path / "nope.npz")
