"""visualize_grid on every backend; the plot functions write real PNG files."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from helpers import to_xp
from xpnet.vis_utils import plot_filters, plot_solver_history, visualize_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    with open(path, "rb") as f:
        head = f.read(len(PNG_MAGIC))
    assert head == PNG_MAGIC, f"{path} is not a PNG file"


def test_visualize_grid_tiles_and_rescales(xp):
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(5, 4, 3, 2))
    Xs[2] = 7.0  # a constant image must not divide by zero
    grid = visualize_grid(to_xp(Xs, xp), ubound=10.0, padding=1)
    assert isinstance(grid, np.ndarray)
    # 5 images need a 3x3 grid: 3 tiles of 4 rows and 2 padding rows, 3 tiles of 3 columns and 2 padding columns.
    assert grid.shape == (14, 11, 2)
    tile_4 = grid[5:9, 4:7]  # row 1, column 1
    expected = 10.0 * (Xs[4] - Xs[4].min()) / (Xs[4].max() - Xs[4].min())
    np.testing.assert_allclose(tile_4, expected, rtol=1e-12)
    assert tile_4.min() == 0.0 and tile_4.max() == pytest.approx(10.0)
    np.testing.assert_array_equal(grid[0:4, 8:11], 0.0)  # image 2, constant
    np.testing.assert_array_equal(grid[4, :], 0.0)  # padding row
    np.testing.assert_array_equal(grid[10:14, 4:11], 0.0)  # empty slots after the last image


def test_visualize_grid_rejects_bad_input():
    with pytest.raises(ValueError, match=r"Xs must have shape \(N, H, W, C\), got \(4, 4, 3\)"):
        visualize_grid(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="padding must be a non-negative integer, got -1"):
        visualize_grid(np.zeros((1, 2, 2, 1)), padding=-1)


def _history(seed):
    rng = np.random.default_rng(seed)
    return {
        "loss_history": list(2.3 * np.exp(-np.arange(30) / 10) + 0.1 * rng.random(30)),
        "train_acc_history": [0.2, 0.5, 0.7],
        "val_acc_history": [0.18, 0.45, 0.6],
    }


def test_plot_solver_history_accepts_solver_dict_and_labelled_runs(tmp_path):
    solver = SimpleNamespace(**_history(0))
    written = [
        plot_solver_history(solver, tmp_path / "solver.png"),
        plot_solver_history(_history(1), tmp_path / "dict.png", title="one run"),
        plot_solver_history({"baseline": solver, "batchnorm": _history(2)}, tmp_path / "sub" / "compare.png"),
    ]
    for path in written:
        _assert_png(path)


def test_plot_solver_history_names_what_is_missing(tmp_path):
    with pytest.raises(TypeError, match="without val_acc_history"):
        plot_solver_history(SimpleNamespace(loss_history=[1.0], train_acc_history=[0.1]), tmp_path / "x.png")
    with pytest.raises(TypeError, match=r"solver_or_histories\['a'\] must be a Solver"):
        plot_solver_history({"a": object()}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="empty mapping"):
        plot_solver_history({}, tmp_path / "x.png")


@pytest.mark.parametrize("channels", [1, 3])
def test_plot_filters_writes_png(xp, tmp_path, channels):
    W1 = np.random.default_rng(0).normal(size=(6, channels, 3, 3))
    _assert_png(plot_filters(to_xp(W1, xp), tmp_path / "filters.png"))


def test_plot_filters_rejects_bad_shape(tmp_path):
    with pytest.raises(ValueError, match=r"W1 must have shape \(F, C, HH, WW\) with C = 1 or 3, got \(6, 2, 3, 3\)"):
        plot_filters(np.zeros((6, 2, 3, 3)), tmp_path / "f.png")
