"""Pictures of images, filters and training runs, as in CS231n's notebooks.

Arrays of any backend are copied to the host first. Plots are drawn on a bare ``matplotlib.figure.Figure`` and
written straight to a PNG file, or, without a path, returned: a notebook shows a Figure that ends a cell inline, and
``fig.savefig`` writes it. No pyplot state, no display and no global backend switch, so they work on a headless GPU
machine and inside a notebook alike (where pyplot would show a figure twice: once itself, once as the cell's
value). matplotlib (a dependency of xpnet) is imported only when a plot is drawn, so importing this module stays
fast.

:func:`visualize_grid`, :func:`vis_grid` and :func:`vis_nn` are CS231n's, with the same arguments and results
(a constant image, which CS231n divides by zero, comes out as zeros here).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._backend import is_array, namespace, to_numpy
from ._validation import check_flag, check_int

__all__ = ["visualize_grid", "vis_grid", "vis_nn", "plot_solver_history", "plot_filters", "plot_sweep"]

_HISTORY_KEYS = ("loss_history", "train_acc_history", "val_acc_history")


def visualize_grid(Xs, ubound=255.0, padding=1):
    """Tile images into one grid image, each rescaled to [0, ubound].

    Parameters
    ----------
    Xs : array of shape (N, H, W, C)
        The images, on any backend.
    ubound : float
        The brightest value of the output.
    padding : int
        Blank pixels between neighbouring images.

    Returns
    -------
    grid : numpy.ndarray
        Float64, of shape (G*H + (G-1)*padding, G*W + (G-1)*padding, C) with G = ceil(sqrt(N)).
    """
    Xs = np.asarray(to_numpy(Xs), dtype=np.float64)
    if Xs.ndim != 4:
        raise ValueError(f"Xs must have shape (N, H, W, C), got {Xs.shape}")
    padding = check_int(padding, "padding", low=0)
    N, H, W, C = Xs.shape
    grid_size = math.ceil(math.sqrt(N))
    grid = np.zeros((H * grid_size + padding * (grid_size - 1), W * grid_size + padding * (grid_size - 1), C))
    for i, img in enumerate(Xs):
        row, col = divmod(i, grid_size)
        y0, x0 = row * (H + padding), col * (W + padding)
        low, high = img.min(), img.max()
        # A constant image (a dead filter) would divide by zero; show it as black.
        scaled = (img - low) / (high - low) if high > low else np.zeros_like(img)
        grid[y0 : y0 + H, x0 : x0 + W] = ubound * scaled
    return grid


def _rescaled(G):
    """``(G - min) / (max - min)`` over the whole array, as CS231n normalizes to [0, 1]; zeros if G is constant."""
    low, high = G.min(), G.max()
    return (G - low) / (high - low) if high > low else np.zeros_like(G)


def _host_images(a, name):
    """``a`` (any backend) as a NumPy array, floating: integer and bool images become float64."""
    a = np.asarray(to_numpy(a))
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype.name}")
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def vis_grid(Xs):
    """Tile images into one grid with a one-pixel border after each, the whole grid rescaled to [0, 1] (CS231n's).

    Unlike :func:`visualize_grid`, the images keep their relative brightness: one min/max for the whole grid, and
    the borders and empty slots take the darkest value.

    Parameters
    ----------
    Xs : array of shape (N, H, W, C)
        The images (N >= 1), on any backend.

    Returns
    -------
    G : numpy.ndarray
        Of shape (A*H + A, A*W + A, C) with A = ceil(sqrt(N)), in Xs's floating dtype (float64 for integer images).
    """
    Xs = _host_images(Xs, "Xs")
    if Xs.ndim != 4 or Xs.shape[0] == 0:
        raise ValueError(f"Xs must have shape (N, H, W, C) with N >= 1, got {Xs.shape}")
    N, H, W, C = Xs.shape
    A = math.ceil(math.sqrt(N))
    G = np.full((A * H + A, A * W + A, C), Xs.min(), dtype=Xs.dtype)
    for n, img in enumerate(Xs):
        y, x = divmod(n, A)
        G[y * (H + 1) : y * (H + 1) + H, x * (W + 1) : x * (W + 1) + W] = img
    return _rescaled(G)


def vis_nn(rows):
    """Tile a table of images (``rows[i][j]``, e.g. nearest neighbours) into one grid, rescaled to [0, 1] (CS231n's).

    Each image is followed by a one-pixel border of ones (before the rescaling, as in CS231n).

    Parameters
    ----------
    rows : list of lists of arrays, or array
        N lists of D images of one shape (H, W, C), or an array of shape (N, D, H, W, C); any backend.

    Returns
    -------
    G : numpy.ndarray
        Of shape (N*H + N, D*W + D, C), in the images' floating dtype (float64 for integer images).
    """
    shaped = "rows must be a non-empty list of non-empty lists of (H, W, C) images, or an (N, D, H, W, C) array"
    if is_array(rows):
        rows = _host_images(rows, "rows")
        if rows.ndim != 5 or 0 in rows.shape[:2]:
            raise ValueError(f"{shaped}, got an array of shape {rows.shape}")
    elif not isinstance(rows, Sequence) or not rows or not all(isinstance(r, Sequence) and r for r in rows):
        raise ValueError(f"{shaped}, got {rows!r:.80}")
    first = _host_images(_image(rows[0][0], "rows[0][0]"), "rows[0][0]")
    if first.ndim != 3:
        raise ValueError(f"rows[0][0] must have shape (H, W, C), got {first.shape}")
    (H, W, C), D = first.shape, len(rows[0])
    G = np.ones((len(rows) * (H + 1), D * (W + 1), C), first.dtype)
    for y, row in enumerate(rows):
        if len(row) != D:
            raise ValueError(f"rows[{y}] must hold {D} images like rows[0], got {len(row)}")
        for x, img in enumerate(row):
            img = _host_images(_image(img, f"rows[{y}][{x}]"), f"rows[{y}][{x}]")
            if img.shape != first.shape:
                raise ValueError(f"rows[{y}][{x}] must have rows[0][0]'s shape {first.shape}, got {img.shape}")
            G[y * (H + 1) : y * (H + 1) + H, x * (W + 1) : x * (W + 1) + W] = img
    return _rescaled(G)


def _image(img, name):
    """``img`` if it is an array of any backend, else a TypeError naming it."""
    namespace(**{name: img})
    return img


def _histories(obj, name):
    """The three history lists of a Solver-like object or a dict holding them."""
    get = obj.get if isinstance(obj, Mapping) else lambda key: getattr(obj, key, None)
    values: dict[str, Any] = {key: get(key) for key in _HISTORY_KEYS}
    missing = [key for key, value in values.items() if value is None]
    if missing:
        raise TypeError(
            f"{name} must be a Solver (or an object or dict with {', '.join(_HISTORY_KEYS)}), "
            f"got {type(obj).__name__} without {', '.join(missing)}"
        )
    return {key: np.asarray([float(to_numpy(v)) for v in value]) for key, value in values.items()}


def _runs(solver_or_histories):
    """[(label or None, histories)] for one run or a mapping of labelled runs."""
    obj = solver_or_histories
    if isinstance(obj, Mapping) and not any(key in obj for key in _HISTORY_KEYS):
        if not obj:
            raise ValueError("solver_or_histories is an empty mapping; give at least one labelled solver")
        return [(str(label), _histories(run, f"solver_or_histories[{label!r}]")) for label, run in obj.items()]
    return [(None, _histories(obj, "solver_or_histories"))]


def _new_figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _save(fig, path):
    """``path`` (a str) after writing ``fig`` there as a PNG, or ``fig`` itself when ``path`` is None."""
    if path is None:
        return fig
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_solver_history(solver_or_histories, path=None, *, title=None):
    """Plot the training loss per iteration and the train / validation accuracy per epoch: a PNG file, or a Figure.

    Parameters
    ----------
    solver_or_histories : Solver or dict
        A Solver (or any object with ``loss_history``, ``train_acc_history`` and ``val_acc_history``), a dict with
        those keys, or a dict ``{label: solver_or_dict}`` to compare runs (then train and validation accuracy get a
        panel each and every run a labelled line).
    path : str or os.PathLike, optional
        The PNG file to write (folders are created), or None (default) to return the figure instead: in a
        notebook, ``plot_solver_history(solver)`` at the end of a cell shows it inline.
    title : str, optional
        A title above the panels.

    Returns
    -------
    path : str
        With a ``path``: the file written.
    fig : matplotlib.figure.Figure
        Without one: the figure (8 x 6 inches, two panels for one run; 9 x 10 inches, three panels, to compare
        runs), not registered with pyplot, so ``plt.show()`` does not show it a second time.

    Notes
    -----
    The Solver checks accuracy before training and after every epoch, so accuracy point ``i`` is epoch ``i``.
    """
    runs = _runs(solver_or_histories)
    single = runs[0][0] is None
    fig = _new_figure((8, 6) if single else (9, 10))
    panels = fig.subplots(2 if single else 3, 1)
    loss_ax, acc_axes = panels[0], panels[1:]
    loss_ax.set(title="Training loss", xlabel="Iteration", ylabel="Loss")
    for label, h in runs:
        loss_ax.plot(h["loss_history"], "o", markersize=2, alpha=0.6, label=label)
    if single:
        h = runs[0][1]
        acc_ax = acc_axes[0]
        acc_ax.plot(h["train_acc_history"], "-o", label="train")
        acc_ax.plot(h["val_acc_history"], "-o", label="val")
        acc_ax.set(title="Classification accuracy", xlabel="Epoch", ylabel="Accuracy")
        acc_ax.legend(loc="lower right")
    else:
        for ax, key, what in zip(acc_axes, _HISTORY_KEYS[1:], ("Training", "Validation"), strict=True):
            for label, h in runs:
                ax.plot(h[key], "-o", markersize=3, label=label)
            ax.set(title=f"{what} accuracy", xlabel="Epoch", ylabel="Accuracy")
            ax.legend(loc="lower right", fontsize="small")
        loss_ax.legend(loc="upper right", fontsize="small", markerscale=3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# Separators between filters, in a colour the filters themselves cannot take: each filter is rescaled to [0, 1] on
# its own, so grey filters span the whole grey ramp (a black or white border would merge with their darkest or
# brightest pixels) and get a light blue one; colour filters reach pure white only where all three channels peak at
# once, so white borders them, as the page around the picture is.
_GREY_SEPARATOR = (0.55, 0.75, 0.95)
_COLOUR_SEPARATOR = (1.0, 1.0, 1.0)


def _filter_picture(W1, padding):
    """The RGB picture :func:`plot_filters` draws: :func:`visualize_grid`'s tiles, borders and empty slots in the
    separator colour."""
    F, C, H, W = W1.shape
    grid = visualize_grid(W1.transpose(0, 2, 3, 1), ubound=1.0, padding=padding)
    rows, cols = np.arange(grid.shape[0]), np.arange(grid.shape[1])
    size = math.ceil(math.sqrt(F))
    tile = (rows[:, None] // (H + padding)) * size + cols[None, :] // (W + padding)
    inside = (rows[:, None] % (H + padding) < H) & (cols[None, :] % (W + padding) < W) & (tile < F)
    picture = np.repeat(grid, 3, axis=2) if C == 1 else grid
    picture[~inside] = _GREY_SEPARATOR if C == 1 else _COLOUR_SEPARATOR
    return picture


def plot_filters(W1, path=None, *, padding=1):
    """Draw first-layer convolution filters tiled with :func:`visualize_grid`: a PNG file, or a Figure.

    Each filter is rescaled to its own [0, 1]; the borders between filters are drawn in a colour the filters cannot
    take (light blue between grey filters, white between colour ones), so every filter's edge stays visible.

    Parameters
    ----------
    W1 : array of shape (F, C, HH, WW)
        The first layer's filters, on any backend; C = 3 is drawn in colour, C = 1 in grey.
    path : str or os.PathLike, optional
        The PNG file to write (folders are created), or None (default) to return the figure instead: in a notebook,
        ``plot_filters(model.params['W1'])`` at the end of a cell shows it inline.
    padding : int
        Pixels of border between neighbouring filters (>= 0).

    Returns
    -------
    path : str
        With a ``path``: the file written.
    fig : matplotlib.figure.Figure
        Without one: the figure (5 x 5 inches), not registered with pyplot.
    """
    W1 = np.asarray(to_numpy(W1), dtype=np.float64)
    if W1.ndim != 4 or W1.shape[1] not in (1, 3):
        raise ValueError(f"W1 must have shape (F, C, HH, WW) with C = 1 or 3, got {W1.shape}")
    picture = _filter_picture(W1, padding)
    fig = _new_figure((5, 5))
    ax = fig.subplots()
    ax.imshow(picture, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{W1.shape[0]} first-layer filters")
    return _save(fig, path)


def plot_sweep(lines, path=None, *, xlabel, ylabel, logx=None, title=None):
    """Plot a sweep's results: one line of points ``(x, y)`` per group, each sorted by ``x``; a PNG file, or a Figure.

    :meth:`xpnet.sweep.SweepResults.plot` chooses the points (a config key against a result, grouped by another
    config key, failed trials left out) and draws them with this function.

    Parameters
    ----------
    lines : dict ``{label: [(x, y), ...]}``
        Each value a sequence of points: ``y`` a real number, ``x`` a number (or strings, drawn as categories); the
        label (a str) names the line in the legend, and a single line may have the label None (no legend).
    path : str or os.PathLike, optional
        The PNG file to write (folders are created), or None (default) to return the figure instead.
    xlabel, ylabel : str
        The axis labels.
    logx : bool or None
        A logarithmic x axis; None (default) draws one when every ``x`` is positive and they span 100x or more.
    title : str, optional
        A title above the plot.

    Returns
    -------
    path : str
        With a ``path``: the file written.
    fig : matplotlib.figure.Figure
        Without one: the figure (7 x 4.5 inches), not registered with pyplot.

    Raises
    ------
    TypeError
        ``lines`` is not a dict of sequences of ``(x, y)`` pairs with a real ``y``, or ``logx`` not True, False or
        None.
    """
    if not isinstance(lines, Mapping):
        raise TypeError(f"lines must be a dict {{label: [(x, y), ...]}}, got {type(lines).__name__}")
    points = {}
    for label, line in lines.items():
        if isinstance(line, (str, bytes)) or not isinstance(line, Sequence):
            raise TypeError(f"lines[{label!r}] must be a list of (x, y) pairs, got {type(line).__name__}")
        for p in line:
            if not (isinstance(p, Sequence) and len(p) == 2 and _real(p[1])):
                raise TypeError(f"lines[{label!r}] must hold (x, y) pairs with a real number y, got {p!r}")
        points[label] = sorted(line, key=lambda p: p[0])
    check_flag(logx, "logx", allow_none=True)
    xs = [px for line in points.values() for px, _ in line]
    if logx is None:
        logx = bool(xs) and all(_real(v) and v > 0 for v in xs) and max(xs) >= 100 * min(xs)
    fig = _new_figure((7, 4.5))
    ax = fig.subplots()
    for label, line in points.items():
        ax.plot([p[0] for p in line], [p[1] for p in line], "-o", markersize=4, label=label)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "")
    if any(label is not None for label in points):
        ax.legend(fontsize="small")
    return _save(fig, path)


def _real(v) -> bool:
    """A real number that is not a bool (NumPy scalars included)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
