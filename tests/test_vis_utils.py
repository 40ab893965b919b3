"""visualize_grid on every backend; the plot functions write real PNG files, or return the Figure a notebook shows."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import numpy as np
import pytest

from xpnet.vis_utils import plot_filters, plot_solver_history, vis_grid, vis_nn, visualize_grid

from helpers import to_xp

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
    with pytest.raises(ValueError, match="^padding must be an int >= 0, got -1$"):
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


def _shown_inline(fig) -> bytes:
    """The PNG a notebook with ``%matplotlib inline`` shows for a Figure that ends a cell: IPython renders it with
    ``pylabtools.print_figure`` (without IPython, as ``fig.savefig`` writes it)."""
    try:
        from IPython.core.pylabtools import print_figure
    except ImportError:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    return print_figure(fig, "png")


def _assert_figure_for_a_notebook(fig, folder):
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure), f"expected a matplotlib Figure, got {type(fig).__name__}"
    # Not a pyplot figure: a notebook shows it once, as the cell's value (pyplot would show it a second time).
    assert fig.canvas.manager is None
    assert _shown_inline(fig).startswith(PNG_MAGIC)
    assert list(folder.iterdir()) == [], "nothing is written without a path"


def test_plot_solver_history_without_a_path_returns_the_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    single = plot_solver_history(SimpleNamespace(**_history(0)), title="one run")
    compare = plot_solver_history({"baseline": _history(1), "batchnorm": _history(2)})
    assert [ax.get_title() for ax in single.axes] == ["Training loss", "Classification accuracy"]
    assert [text.get_text() for text in single.texts] == ["one run"]
    assert [ax.get_title() for ax in compare.axes] == ["Training loss", "Training accuracy", "Validation accuracy"]
    assert [len(ax.lines) for ax in compare.axes] == [2, 2, 2]  # a line per run in every panel
    for fig in (single, compare):
        _assert_figure_for_a_notebook(fig, tmp_path)


@pytest.mark.parametrize("channels", [1, 3])
def test_plot_filters_without_a_path_returns_the_figure(xp, tmp_path, monkeypatch, channels):
    monkeypatch.chdir(tmp_path)
    W1 = np.random.default_rng(0).normal(size=(6, channels, 3, 3))
    fig = plot_filters(to_xp(W1, xp, "float32"), padding=2)  # float32: every device has it
    assert [ax.get_title() for ax in fig.axes] == ["6 first-layer filters"]
    # The picture drawn is the one plot_filters writes to a file: 3 x 3 tiles of 3 x 3 pixels, 2 pixels apart.
    assert fig.axes[0].images[0].get_array().shape == (3 * 3 + 2 * 2, 3 * 3 + 2 * 2, 3)
    _assert_figure_for_a_notebook(fig, tmp_path)


@pytest.mark.parametrize("channels", [1, 3])
def test_plot_filters_writes_png(xp, tmp_path, channels):
    W1 = np.random.default_rng(0).normal(size=(6, channels, 3, 3))
    _assert_png(plot_filters(to_xp(W1, xp), tmp_path / "filters.png"))


def test_plot_filters_rejects_bad_shape(tmp_path):
    with pytest.raises(ValueError, match=r"W1 must have shape \(F, C, HH, WW\) with C = 1 or 3, got \(6, 2, 3, 3\)"):
        plot_filters(np.zeros((6, 2, 3, 3)), tmp_path / "f.png")


def _cs231n_vis_grid(Xs):
    """CS231n's vis_grid, transcribed literally."""
    (N, H, W, C) = Xs.shape
    A = int(math.ceil(math.sqrt(N)))
    G = np.ones((A * H + A, A * W + A, C), Xs.dtype)
    G *= np.min(Xs)
    n = 0
    for y in range(A):
        for x in range(A):
            if n < N:
                G[y * H + y : (y + 1) * H + y, x * W + x : (x + 1) * W + x, :] = Xs[n, :, :, :]
                n += 1
    maxg = G.max()
    ming = G.min()
    G = (G - ming) / (maxg - ming)
    return G


def _cs231n_vis_nn(rows):
    """CS231n's vis_nn, transcribed literally."""
    N = len(rows)
    D = len(rows[0])
    H, W, C = rows[0][0].shape
    Xs = rows[0][0]
    G = np.ones((N * H + N, D * W + D, C), Xs.dtype)
    for y in range(N):
        for x in range(D):
            G[y * H + y : (y + 1) * H + y, x * W + x : (x + 1) * W + x, :] = rows[y][x]
    maxg = G.max()
    ming = G.min()
    G = (G - ming) / (maxg - ming)
    return G


@pytest.mark.parametrize(("n", "dtype"), [(1, "float64"), (5, "float64"), (9, "float32"), (7, "uint8")])
def test_vis_grid_is_cs231n_vis_grid(xp, n, dtype):
    rng = np.random.default_rng(n)
    Xs = (rng.random((n, 3, 2, 3)) * 200).astype(dtype)
    expected = _cs231n_vis_grid(Xs)
    grid = vis_grid(Xs if dtype == "uint8" else to_xp(Xs, xp))  # torch and array_api_strict have no uint8 needs
    assert isinstance(grid, np.ndarray) and grid.shape == expected.shape and grid.dtype == expected.dtype
    np.testing.assert_allclose(grid, expected, rtol=1e-6 if dtype == "float32" else 1e-15)


def test_vis_nn_is_cs231n_vis_nn(xp):
    rng = np.random.default_rng(0)
    rows = [[rng.standard_normal((4, 3, 1)) * 3 for _ in range(3)] for _ in range(2)]
    expected = _cs231n_vis_nn(rows)
    for given in ([[to_xp(img, xp) for img in row] for row in rows], to_xp(np.asarray(rows), xp)):
        grid = vis_nn(given)
        assert isinstance(grid, np.ndarray) and grid.shape == (2 * 4 + 2, 3 * 3 + 3, 1)
        np.testing.assert_allclose(grid, expected, rtol=1e-15)


def test_vis_grid_and_vis_nn_of_constant_images_are_zeros_not_nan():
    np.testing.assert_array_equal(vis_grid(np.full((2, 2, 2, 1), 3.0)), 0.0)
    np.testing.assert_array_equal(vis_nn([[np.ones((2, 2, 1))]]), 0.0)


def test_vis_grid_and_vis_nn_name_bad_input():
    with pytest.raises(ValueError, match=r"^Xs must have shape \(N, H, W, C\) with N >= 1, got \(0, 2, 2, 1\)"):
        vis_grid(np.zeros((0, 2, 2, 1)))
    with pytest.raises(ValueError, match=r"^Xs must have shape \(N, H, W, C\) with N >= 1, got \(2, 2, 1\)"):
        vis_grid(np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match=r"^rows\[1\]\[0\] must have rows\[0\]\[0\]'s shape \(2, 2, 1\), got \(2, 3, "):
        vis_nn([[np.zeros((2, 2, 1))], [np.zeros((2, 3, 1))]])
    with pytest.raises(ValueError, match=r"^rows\[1\] must hold 2 images like rows\[0\], got 1"):
        vis_nn([[np.zeros((2, 2, 1))] * 2, [np.zeros((2, 2, 1))]])
    with pytest.raises(ValueError, match=r"^rows must be a non-empty list of non-empty lists of \(H, W, C\) images"):
        vis_nn([])
    with pytest.raises(TypeError, match=r"^rows\[0\]\[0\] must be an array \(NumPy, CuPy, torch, .*got builtins"):
        vis_nn([["image"]])


@pytest.mark.parametrize(("channels", "colour"), [(1, (0.55, 0.75, 0.95)), (3, (1.0, 1.0, 1.0))])
def test_filter_borders_and_empty_slots_take_a_colour_the_filters_cannot(channels, colour):
    from xpnet.vis_utils import _filter_picture

    W1 = np.random.default_rng(0).normal(size=(5, channels, 3, 2))
    picture = _filter_picture(W1, padding=2)
    # 5 filters: a 3x3 grid of 3x2 tiles with 2-pixel borders.
    assert picture.shape == (3 * 3 + 2 * 2, 3 * 2 + 2 * 2, 3)
    tiles = visualize_grid(W1.transpose(0, 2, 3, 1), ubound=1.0, padding=2)
    inside = np.zeros(picture.shape[:2], dtype=bool)
    for i in range(5):
        r, c = divmod(i, 3)
        inside[r * 5 : r * 5 + 3, c * 4 : c * 4 + 2] = True
    np.testing.assert_array_equal(picture[inside], np.broadcast_to(tiles[inside], (inside.sum(), 3)))
    np.testing.assert_array_equal(picture[~inside], np.broadcast_to(colour, ((~inside).sum(), 3)))
    # No filter pixel has the border's colour: grey pixels have equal channels, and a colour filter reaches white
    # only if all three channels peak at one pixel, which these do not.
    assert not np.any(np.all(picture[inside] == colour, axis=1))
