"""The records of a sweep: :class:`SweepResults` (best, table, plot, save and load)."""

from __future__ import annotations

import errno
import json
import math
import numbers
import os
import stat
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import _npz
from .._atomic import atomic_write_text
from ._cluster import INSTALL
from ._trial import empty_record, final_loss

__all__ = ["SweepResults"]

_FORMAT, _VERSION = "xpnet.sweep", 1
_SUMMARY = (
    "status",
    "error",
    "best_val_acc",
    "final_train_acc",
    "final_val_acc",
    "final_loss",
    "epochs",
    "rung",
    "seconds",
    "worker",
)


def _record_value(record: dict, key) -> Any:
    if callable(key):
        return key(record)
    if key in record:
        return record[key]
    if key in ("final_train_acc", "final_val_acc"):
        history = record[key.replace("final_", "") + "_history"]
        return history[-1] if history else None
    if key == "final_loss":
        return final_loss(record)
    if key in ("epochs", "rung"):  # a file saved before halving existed: one rung, its epochs as trained
        return 0 if key == "rung" else None
    return record["config"].get(key)


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


class SweepResults(Sequence):
    """The records of a sweep, in config order: ``results[i]`` is the dict of ``configs[i]`` (see :func:`sweep`).

    Parameters
    ----------
    records : iterable of dict
        One record per trial, in config order.
    """

    def __init__(self, records: Iterable[dict]):
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def __repr__(self) -> str:
        counts = {s: sum(r["status"] == s for r in self.records) for s in _STATUSES}
        text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return f"SweepResults({len(self)} trials: {text or 'none'})"

    def best(self, key="best_val_acc") -> dict:
        """The record with the highest ``key``; records without a finite number for it (failed trials) are left out.

        After a sweep with halving only the trials of the highest rung that has such a record compete: a trial
        stopped after one epoch may have scored higher than the survivors did over more, but was not trained on.

        Parameters
        ----------
        key : str or callable, default 'best_val_acc'
            A record key (``"best_val_acc"``), ``"final_train_acc"``, ``"final_val_acc"``, ``"final_loss"``, a
            config key, or a callable ``record -> number`` (negate it to find a lowest).

        Returns
        -------
        dict
            The record.
        """
        scored = [(v, i) for i, r in enumerate(self.records) if _finite(v := _record_value(r, key))]
        if not scored:
            raise ValueError(f"no record has a finite number for key {key!r} (statuses: {repr(self)})")
        top = max(_record_value(self.records[i], "rung") for _, i in scored)
        scored = [(v, i) for v, i in scored if _record_value(self.records[i], "rung") == top]
        return self.records[max(scored, key=lambda s: (s[0], -s[1]))[1]]

    def _rows(self) -> list[dict]:
        rows = []
        for r in self.records:
            row = {k if k not in _SUMMARY else f"config.{k}": v for k, v in r["config"].items()}
            row.update({k: _record_value(r, k) for k in _SUMMARY})
            row.update({k: r[k] for k in ("loss_history", "train_acc_history", "val_acc_history")})
            rows.append(row)
        return rows

    def to_pandas(self):
        """A ``pandas.DataFrame``, one row per trial: the config keys, then ``status``, ``error``,
        ``best_val_acc``, ``final_train_acc``, ``final_val_acc``, ``final_loss`` (mean of the last 100 losses),
        ``epochs`` (trained), ``rung`` (the last halving rung it ran, from 0), ``seconds``, ``worker`` and the three
        histories (lists)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(f"SweepResults.to_pandas needs pandas; install it with: {INSTALL}") from None
        return pandas.DataFrame(self._rows())

    def plot(
        self,
        x: str,
        y="best_val_acc",
        hue: str | None = None,
        path=None,
        *,
        logx: bool | None = None,
        title: str | None = None,
    ):
        """Plot ``y`` against the config key ``x``, one line per value of the config key ``hue``.

        Failed trials are left out.

        Parameters
        ----------
        x : str
            The config key on the horizontal axis.
        y : str or callable, default 'best_val_acc'
            What to plot, a key as in :meth:`best`.
        hue : str, optional
            A config key: one line per value.
        path : str or path, optional
            Where to write a PNG.
        logx : bool, optional
            A log axis; by default when positive ``x`` span 100× or more.
        title : str, optional
            The plot's title.

        Returns
        -------
        path or matplotlib.figure.Figure
            ``path`` when given, else the matplotlib ``Figure``.
        """
        from ..vis_utils import plot_sweep

        groups: dict[Any, list[tuple[Any, float]]] = {}
        for r in self.records:
            if x not in r["config"] or (hue is not None and hue not in r["config"]):
                missing = x if x not in r["config"] else hue
                raise ValueError(f"{missing!r} is not a config key; config keys: {list(r['config'])}")
            value = _record_value(r, y)
            if r["status"] != "error" and _finite(value):
                group = None if hue is None else r["config"][hue]
                groups.setdefault(group, []).append((r["config"][x], value))
        lines = {None if hue is None else f"{hue}={group}": points for group, points in groups.items()}
        ylabel = y if isinstance(y, str) else getattr(y, "__name__", "value")
        return plot_sweep(lines, path, xlabel=x, ylabel=ylabel, logx=logx, title=title)

    def plot_curves(self, path=None, *, y: str = "val_acc", title: str | None = None):
        """Validation (or training) accuracy against epochs, one line per trial: how a halving sweep is read.

        Each line ends where its trial stopped, so the rungs show as the epochs where lines end; the legend names
        the trials of the highest rung reached. Trials without a history are left out.

        Parameters
        ----------
        path : str or path, optional
            Where to write a PNG.
        y : {'val_acc', 'train_acc'}, default 'val_acc'
            Which accuracy history.
        title : str, optional
            The plot's title.

        Returns
        -------
        path or matplotlib.figure.Figure
            ``path`` when given, else the matplotlib ``Figure``.
        """
        from ..vis_utils import plot_sweep

        if y not in ("val_acc", "train_acc"):
            raise ValueError(f"y must be 'val_acc' or 'train_acc', got {y!r}")
        top = max((_record_value(r, "rung") for r in self.records), default=0)
        lines: dict[Any, list[tuple[int, float]]] = {}
        for r in self.records:
            history = [v for v in r[f"{y}_history"] if _finite(v)]
            if not history or len(history) != len(r[f"{y}_history"]):
                continue
            # One check per epoch end, and (unless an epoch is one iteration) one after the first iteration.
            epochs = _record_value(r, "epochs")
            if epochs is None:
                epochs = len(history) - 1
            first = epochs - len(history) + 1
            points = [(first + k, v) for k, v in enumerate(history)]
            label = f"{r['index']}: {r['config']}" if _record_value(r, "rung") == top and len(self) > 1 else None
            lines[label if label is not None else f"_{r['index']}"] = points
        return plot_sweep(lines, path, xlabel="epoch", ylabel=y.replace("_", " "), logx=False, title=title)

    def save(self, path) -> None:
        """Write the records to a JSON file at ``path`` (atomically); ``best_params`` go to ``{path}.params.npz``.

        Non-finite numbers are written as JSON's common extension ``NaN`` / ``Infinity``.

        Parameters
        ----------
        path : str or path
            The JSON file to write.
        """
        path = os.fspath(path)
        records, arrays = [], {}
        for r in self.records:
            r = dict(r)
            params = r.pop("best_params", None)
            if params is not None:
                arrays.update({f"{r['index']}/{k}": v for k, v in params.items()})
                r["best_params"] = sorted(params)
            records.append(r)
        params_file = os.path.basename(path) + ".params.npz" if arrays else None
        try:
            text = json.dumps(
                {"format": _FORMAT, "version": _VERSION, "params_file": params_file, "records": records},
                default=_json_default,
                indent=1,
            )
        except TypeError as err:
            raise TypeError(f"cannot save {path!r}: {err}") from None
        if params_file is not None:
            _npz.write_npz(os.path.join(os.path.dirname(os.path.abspath(path)), params_file), arrays)
        atomic_write_text(path, text)

    @classmethod
    def load(cls, path) -> SweepResults:
        """Read a file written by :meth:`save` (and its ``.params.npz``, if any).

        Parameters
        ----------
        path : str or path
            The JSON file :meth:`save` wrote.

        Returns
        -------
        SweepResults

        Notes
        -----
        The file is checked before anything is used: a regular file (not a FIFO or a device, which could block
        for ever), UTF-8 JSON of bounded depth, the format and version, and every record's fields and their types
        (``config`` a dict, ``status`` one of ``"ok"``, ``"diverged"``, ``"error"``, histories lists of numbers,
        ...). ``params_file`` must be a file name in the results file's own folder (no path), so a results file
        cannot make xpnet read files elsewhere. Any failure is a ``ValueError`` naming the file and the field.
        """
        path = os.fspath(path)
        doc = _read_json(path)
        records = _check_document(doc, path)
        if doc.get("params_file") is not None:
            folder = os.path.dirname(os.path.abspath(path))
            params_path = os.path.join(folder, doc["params_file"])
            real = os.path.realpath(folder)
            if os.path.commonpath([os.path.realpath(params_path), real]) != real:  # a link out of the folder
                raise ValueError(f"{path}: 'params_file' {doc['params_file']!r} leads out of the folder {folder!r}")
            _check_regular(params_path, f"{path}: params_file {doc['params_file']!r}")
            arrays, _ = _npz.read_npz(params_path)
            for r in records:
                if "best_params" in r:
                    missing = [k for k in r["best_params"] if f"{r['index']}/{k}" not in arrays]
                    if missing:
                        raise ValueError(f"{params_path}: trial {r['index']} has no arrays for {missing}")
                    r["best_params"] = {k: arrays[f"{r['index']}/{k}"] for k in r["best_params"]}
        return cls(records)


_MAX_BYTES = 1 << 30  # a results file holds configs and histories, not arrays; far more is not one
_STATUSES = ("ok", "stopped", "diverged", "error")


def _check_regular(path: str, what: str) -> None:
    """Refuse a path that is not a regular file before opening it: opening a FIFO blocks until a writer comes."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{what}: no such file: {path!r}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{what}: {path!r} is not a regular file (a FIFO, device, socket or folder)")


def _read_json(path: str) -> Any:
    _check_regular(path, "SweepResults.load")
    # O_NONBLOCK: should the path become a FIFO between the check and the open, the open does not wait.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file (a FIFO, device, socket or folder)")
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        raw = fh.read(_MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:
        raise ValueError(f"{path}: not a sweep results file (larger than {_MAX_BYTES} bytes)")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not a sweep results file (not UTF-8 text, as JSON is: {err.reason} at byte "
            f"{err.start}; a pickle or other binary file?)"
        ) from None
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError; RecursionError: nested too deep
        detail = "nested too deeply" if isinstance(err, RecursionError) else err
        raise ValueError(f"{path}: not a sweep results file (invalid JSON: {detail})") from None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and all(_number(x) for x in v)


# field -> (check, what it must be); NaN and infinities are numbers (save writes a diverged trial's losses).
_FIELDS = {
    "index": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int >= 0"),
    "config": (lambda v: isinstance(v, dict), "a JSON object (the trial's config)"),
    "status": (lambda v: v in _STATUSES, f"one of {list(_STATUSES)}"),
    "error": (lambda v: v is None or isinstance(v, str), "null or a string"),
    "best_val_acc": (lambda v: v is None or _number(v), "null or a number"),
    "loss_history": (_numbers, "a list of numbers"),
    "train_acc_history": (_numbers, "a list of numbers"),
    "val_acc_history": (_numbers, "a list of numbers"),
    "seconds": (_number, "a number"),
    "worker": (lambda v: v is None or isinstance(v, str), "null or a string"),
    "epochs": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int >= 0"),
    "rung": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int >= 0"),
    "best_params": (lambda v: isinstance(v, list) and all(isinstance(k, str) and k for k in v), "a list of names"),
}


def _what(v: Any) -> str:
    return f"{type(v).__name__} {v!r:.60}" if not isinstance(v, (dict, list)) else type(v).__name__


def _check_document(doc: Any, path: str) -> list[dict]:
    """The records of a parsed results file, after checking every field; ``ValueError`` naming the first bad one."""
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
        raise ValueError(
            f"{path}: not a sweep results file written by SweepResults.save (format {_FORMAT!r} version {_VERSION})"
        )
    unknown = sorted(set(doc) - {"format", "version", "params_file", "records"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {unknown}")
    params_file = doc.get("params_file")
    if params_file is not None:
        if not isinstance(params_file, str):
            raise ValueError(f"{path}: 'params_file' must be null or a file name, got {_what(params_file)}")
        # A bare name only: a results file must not point xpnet at files outside its own folder.
        if (
            params_file != os.path.basename(params_file)
            or params_file in ("", ".", "..")
            or "/" in params_file
            or "\\" in params_file
            or os.path.isabs(params_file)
            or not params_file.endswith(".npz")
        ):
            raise ValueError(
                f"{path}: 'params_file' must be the name of a .npz file in the results file's folder (no path), "
                f"got {params_file!r}"
            )
    records = doc.get("records")
    if not isinstance(records, list):
        raise ValueError(f"{path}: 'records' must be a list of records, got {_what(records)}")
    # epochs and rung came with halving: files saved before lack them, and still load.
    required = set(empty_record({}, 0)) - {"epochs", "rung"}
    seen: set[int] = set()
    for n, r in enumerate(records):
        if not isinstance(r, dict):
            raise ValueError(f"{path}: records[{n}] must be a JSON object, got {_what(r)}")
        missing = sorted(required - set(r))
        if missing:
            raise ValueError(f"{path}: records[{n}] lacks the keys {missing}")
        for field, (check, expected) in _FIELDS.items():
            if field in r and not check(r[field]):
                raise ValueError(f"{path}: records[{n}].{field} must be {expected}, got {_what(r[field])}")
        if r["index"] in seen:
            raise ValueError(f"{path}: records[{n}].index {r['index']} appears twice")
        seen.add(r["index"])
        if "best_params" in r and params_file is None:
            raise ValueError(f"{path}: records[{n}].best_params names arrays but 'params_file' is null")
    return records


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"a config value of type {type(value).__name__} cannot be written to JSON: {value!r:.60}")
