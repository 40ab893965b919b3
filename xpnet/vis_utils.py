"""Pictures of images, filters and training runs, as in CS231n's notebooks.

Arrays of any backend are copied to the host first. Plots are drawn on a bare ``matplotlib.figure.Figure`` and
written straight to a PNG file: no pyplot state, no display and no global backend switch, so they work on a headless
GPU machine and inside a notebook alike. matplotlib is imported only when a plot is drawn (``pip install
xpnet[plot]``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from ._backend import to_numpy

__all__ = ["visualize_grid", "plot_solver_history", "plot_filters"]

_HISTORY_KEYS = ("loss_history", "train_acc_history", "val_acc_history")


def visualize_grid(Xs, ubound=255.0, padding=1):
    """Tile images into one grid image, each rescaled to [0, ubound].

    Parameters
    ----------
    Xs : array of shape (N, H, W, C), any backend
    ubound : the brightest value of the output
    padding : blank pixels between neighbouring images

    Returns
    -------
    grid : float64 NumPy array of shape (G*H + (G-1)*padding, G*W + (G-1)*padding, C) with G = ceil(sqrt(N))
    """
    Xs = np.asarray(to_numpy(Xs), dtype=np.float64)
    if Xs.ndim != 4:
        raise ValueError(f"Xs must have shape (N, H, W, C), got {Xs.shape}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
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


def _histories(obj, name):
    """The three history lists of a Solver-like object or a dict holding them."""
    get = obj.get if isinstance(obj, Mapping) else lambda key: getattr(obj, key, None)
    values = {key: get(key) for key in _HISTORY_KEYS}
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
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_solver_history(solver_or_histories, path, *, title=None):
    """Write a PNG of the training loss per iteration and the train / validation accuracy per epoch.

    Parameters
    ----------
    solver_or_histories : a Solver (or any object with ``loss_history``, ``train_acc_history`` and
        ``val_acc_history``), a dict with those keys, or a dict ``{label: solver_or_dict}`` to compare runs (then
        train and validation accuracy get a panel each and every run a labelled line).
    path : the PNG file to write (folders are created)

    The Solver checks accuracy before training and after every epoch, so accuracy point ``i`` is epoch ``i``.

    Returns
    -------
    path : str
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
        for ax, key, what in zip(acc_axes, _HISTORY_KEYS[1:], ("Training", "Validation")):
            for label, h in runs:
                ax.plot(h[key], "-o", markersize=3, label=label)
            ax.set(title=f"{what} accuracy", xlabel="Epoch", ylabel="Accuracy")
            ax.legend(loc="lower right", fontsize="small")
        loss_ax.legend(loc="upper right", fontsize="small", markerscale=3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_filters(W1, path, *, padding=1):
    """Write a PNG of first-layer convolution filters tiled with :func:`visualize_grid`.

    Parameters
    ----------
    W1 : array of shape (F, C, HH, WW), any backend; C = 3 is drawn in colour, C = 1 in grey
    path : the PNG file to write (folders are created)

    Returns
    -------
    path : str
    """
    W1 = np.asarray(to_numpy(W1), dtype=np.float64)
    if W1.ndim != 4 or W1.shape[1] not in (1, 3):
        raise ValueError(f"W1 must have shape (F, C, HH, WW) with C = 1 or 3, got {W1.shape}")
    grid = visualize_grid(W1.transpose(0, 2, 3, 1), ubound=1.0, padding=padding)
    fig = _new_figure((5, 5))
    ax = fig.subplots()
    if grid.shape[2] == 1:
        ax.imshow(grid[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{W1.shape[0]} first-layer filters")
    return _save(fig, path)
