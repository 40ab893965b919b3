"""The Solver's checkpoint: its schema (what a file holds and what each field may be), writing and verified
reading, and the adapter between a model's non-trainable state and the file.

A checkpoint is an :mod:`xpnet._npz` file whose metadata holds the Solver's scalars and a ``tree``: the params,
best params, optimizer configs and model states as nested JSON with each array replaced by ``{"__array__": key}``.
Reading checks every field's type (:mod:`xpnet._metadata`), every array's shape and dtype kind against the live
array it replaces, each optimizer config through the check its update rule gives, and both random states, before
the caller changes anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _metadata as M
from ._backend import asarray, dtype_name, is_array
from ._npz import Spec, check_array, dtype_kind, read_npz, write_npz
from ._random import rng_from_state, rng_state

__all__ = [
    "FORMAT",
    "apply_global_rng",
    "model_state",
    "read_checkpoint",
    "read_epoch",
    "set_model_state",
    "state_specs",
    "write_checkpoint",
]

FORMAT, VERSION = "xpnet.solver", 1
_WHAT = "xpnet Solver checkpoint (written by Solver.save_checkpoint)"
ARRAY_TAG = "__array__"
_META = {
    "backend": M.STR,
    "update_rule": M.STR,
    "epoch": M.COUNT,
    "iteration": M.COUNT,
    "iterations_per_epoch": M.POSITIVE,
    "best_val_acc": M.ACCURACY,
    "loss_history": M.REALS,  # NaN or inf may end it: a run stopped by a non-finite loss
    "train_acc_history": M.ACCURACIES,
    "val_acc_history": M.ACCURACIES,
    "sampler": (lambda v: v is None or (M.is_rng_state(v) and not v["global"]), "null or a Generator's state"),
    "numpy_global_rng": (lambda v: M.is_rng_state(v) and v["global"], "NumPy's global random state"),
    "model_state_kind": (lambda v: v in (None, "get_state", "bn_params"), "null, 'get_state' or 'bn_params'"),
    "tree": M.DICT,
}
_TREE = {
    "params": M.DICT,
    "best_params": M.DICT,
    "optim_configs": M.DICT,
    "model_state": M.ANYTHING,
    "best_model_state": M.ANYTHING,
}
_check_meta = M.format_checker(FORMAT, VERSION, _META, what=_WHAT, version_name="checkpoint version")


# The model's non-trainable state, as the Solver sees it


def model_state(model: Any) -> tuple[str | None, Any]:
    """How ``model`` exposes its non-trainable arrays (``'get_state'``, ``'bn_params'`` or None), and those arrays:
    ``get_state()`` when the model has ``get_state``/``set_state``, else the arrays of CS231n's ``bn_params``."""
    if hasattr(model, "get_state") and hasattr(model, "set_state"):
        return "get_state", model.get_state()
    bn_params = getattr(model, "bn_params", None)
    if isinstance(bn_params, (list, tuple)) and bn_params:
        return "bn_params", [{k: v for k, v in d.items() if is_array(v)} for d in bn_params]
    return None, None


def set_model_state(model: Any, kind: str | None, state: Any) -> None:
    """Put ``state`` (of ``kind``, as :func:`model_state` returns it) into ``model``."""
    if kind == "get_state":
        if not hasattr(model, "set_state"):
            raise ValueError("the checkpoint holds model state, but the model has no set_state(state) method")
        model.set_state(state)
    elif kind == "bn_params":
        bn_params = getattr(model, "bn_params", None)
        if not isinstance(bn_params, (list, tuple)) or len(bn_params) != len(state):
            raise ValueError(f"the checkpoint holds {len(state)} bn_params dicts; the model does not match")
        for target, saved in zip(bn_params, state, strict=True):
            target.update(saved)


def state_specs(model: Any) -> tuple[str | None, Any]:
    """How ``model`` exposes its non-trainable arrays, and what each one read from a checkpoint must match: a dict
    name -> :class:`~xpnet._npz.Spec` for ``'get_state'``, one such dict per ``bn_params`` dict for ``'bn_params'``.
    Arrays created only by a training pass are included, so a checkpoint taken later loads into a fresh model."""
    kind, state = model_state(model)
    ref = next(iter(model.params.values()))
    if kind == "get_state":
        specs = {name: Spec.of(v) for name, v in state.items() if is_array(v)}
        shapes = getattr(model, "state_shapes", None)
        if callable(shapes):  # xpnet's models: running statistics exist only after a training pass
            specs.update({name: Spec.of(ref, shape) for name, shape in shapes().items()})
        return kind, specs
    if kind == "bn_params":
        # CS231n's models create running statistics at the first pass, with the shape of gamma{i + 1}.
        slot_specs = []
        for i, d in enumerate(state):
            gamma = model.params.get(f"gamma{i + 1}")
            lazy = {} if gamma is None else dict.fromkeys(("running_mean", "running_var"), Spec.of(gamma))
            slot_specs.append({**lazy, **{k: Spec.of(v) for k, v in d.items()}})
        return kind, slot_specs
    return None, None


# Writing


def _pack(obj: Any, arrays: dict, path: str) -> Any:
    """JSON skeleton of ``obj`` (nested dicts and lists of arrays and scalars); its arrays go into ``arrays``."""
    if is_array(obj):
        key = path if path not in arrays else f"{path}#{len(arrays)}"
        arrays[key] = obj
        return {ARRAY_TAG: key}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"cannot checkpoint {path}: dict keys must be strings, got {bad!r}")
        return {k: _pack(v, arrays, f"{path}/{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if getattr(obj, "shape", None) == () and hasattr(obj, "item"):  # a NumPy scalar such as np.float64
        return obj.item()
    raise TypeError(f"cannot checkpoint {path}: {type(obj).__name__} is neither an array nor a JSON scalar")


def write_checkpoint(path, *, trees: dict[str, Any], meta: dict) -> None:
    """Write a Solver checkpoint: ``trees`` maps ``params``, ``best_params``, ``optim_configs``, ``model_state``
    and ``best_model_state`` to nested dicts/lists of arrays and JSON scalars; ``meta`` holds the JSON scalars."""
    arrays: dict = {}
    prefixes = {"optim_configs": "optim"}
    tree = {name: _pack(value, arrays, prefixes.get(name, name)) for name, value in trees.items()}
    write_npz(path, arrays, {"format": FORMAT, "version": VERSION, **meta, "tree": tree})


# Reading


def _tag(node: Any) -> str | None:
    """The array key of a packed array, ``None`` for any other node."""
    if isinstance(node, dict) and set(node) == {ARRAY_TAG} and isinstance(node[ARRAY_TAG], str):
        return node[ARRAY_TAG]
    return None


def _take(node: Any, arrays: dict, spec: Spec, file: str, what: str):
    """The checked array of packed ``node``, on ``spec.like``'s backend, device and dtype."""
    key = _tag(node)
    if key is None:
        raise ValueError(f"{file}: {what} must be an array, the metadata has {node!r:.60}")
    if key not in arrays:
        raise ValueError(f"{file}: missing array {key!r} ({what})")
    check_array(arrays[key], spec.shape, spec.kind, file=file, key=key, what=what, like=dtype_name(spec.like.dtype))
    return asarray(arrays[key], like=spec.like, dtype=spec.like.dtype)


def _named(
    node: Any,
    arrays: dict,
    specs: dict[str, Spec],
    file: str,
    what: str,
    *,
    complete: bool,
    label: Callable[[str], str] | None = None,
) -> dict:
    """A dict of checked arrays named among ``specs`` (all of them when ``complete``); ``label(name)`` names one
    in messages (``what[name]`` by default)."""
    if not isinstance(node, dict):
        raise ValueError(f"{file}: {what} must be a dict of arrays, the metadata has {node!r:.60}")
    unknown = sorted(set(node) - set(specs))
    if unknown or (complete and set(node) != set(specs)):
        raise ValueError(f"{file}: {what} holds {sorted(node)}, the model has {sorted(specs)}")
    label = label or (lambda name: f"{what}[{name!r}]")
    return {name: _take(value, arrays, specs[name], file, label(name)) for name, value in node.items()}


def _any_arrays(node: Any, arrays: dict, spec: Spec, file: str, what: str) -> Any:
    """An optimizer config's value: JSON scalars and lists, any array in it checked against ``spec``."""
    if _tag(node) is not None:
        return _take(node, arrays, spec, file, what)
    if isinstance(node, dict):
        return {k: _any_arrays(v, arrays, spec, file, f"{what}[{k!r}]") for k, v in node.items()}
    if isinstance(node, list):
        return [_any_arrays(v, arrays, spec, file, f"{what}[{i}]") for i, v in enumerate(node)]
    return node


def _optim_configs(
    node: dict,
    arrays: dict,
    specs: dict[str, Spec],
    file: str,
    check_config: Callable[[dict, str], None] | None,
) -> dict:
    """Every param's optimizer config: its arrays match their param, and ``check_config(config, what)`` (the
    update rule's own check) accepts it."""
    if set(node) != set(specs):
        raise ValueError(f"{file}: optim_configs holds configs for {sorted(node)}, the model has {sorted(specs)}")
    configs = {}
    for name, config in node.items():
        what = f"optim_configs[{name!r}]"
        if not isinstance(config, dict) or _tag(config) is not None:
            raise ValueError(f"{file}: {what} must be a dict, the metadata has {config!r:.60}")
        config = {k: _any_arrays(v, arrays, specs[name], file, f"{what}[{k!r}]") for k, v in config.items()}
        if check_config is not None:
            try:
                check_config(config, what)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{file}: {err}") from None
        configs[name] = config
    return configs


def _model_state_tree(node: Any, arrays: dict, kind: str | None, specs: Any, file: str, what: str) -> Any:
    """A model state of ``kind`` checked against ``specs`` (name -> Spec, or one such dict per bn_params dict)."""
    if node is None:
        return None
    if kind == "get_state":
        return _named(node, arrays, specs, file, what, complete=False)
    if kind == "bn_params":
        if not isinstance(node, list) or len(node) != len(specs):
            raise ValueError(f"{file}: {what} must be a list of {len(specs)} bn_params dicts, got {node!r:.60}")
        return [
            _named(d, arrays, s, file, f"{what} bn_params[{i}]", complete=False)
            for i, (d, s) in enumerate(zip(node, specs, strict=True))
        ]
    raise ValueError(f"{file}: {what} is present, but the model keeps no state")


def _check_finite(node: Any, arrays: dict, file: str, what: str) -> None:
    """``ValueError`` naming ``file`` and the array when an array packed in ``node`` (already checked to exist)
    holds NaN or inf."""
    key = _tag(node)
    if key is not None:
        a = arrays[key]
        if dtype_kind(a.dtype) in "fc" and not np.all(np.isfinite(a)):
            raise ValueError(
                f"{file}: {what} holds non-finite values (NaN or inf) in array {key!r}; the Solver never keeps "
                "params or model state that are not finite as the best ones, so the file is damaged or hand-edited"
            )
    elif isinstance(node, dict):
        for value in node.values():
            _check_finite(value, arrays, file, what)
    elif isinstance(node, list):
        for value in node:
            _check_finite(value, arrays, file, what)


def read_checkpoint(
    path,
    *,
    params: dict,
    state_kind: str | None,
    state_specs: Any,
    update_rule: str | None = None,
    check_config: Callable[[dict, str], None] | None = None,
) -> dict:
    """Read and verify a checkpoint written by :func:`write_checkpoint` for a model with live ``params``.

    ``state_kind`` and ``state_specs`` describe the model's non-trainable state, as :func:`state_specs` returns
    them. A file written with another ``update_rule`` (the name the Solver records) is refused first, then
    ``check_config(config, name)``, if given, checks each param's optimizer config (its arrays already on the
    params' backend) and raises ``TypeError`` or ``ValueError`` naming ``name``.

    Returns the metadata with ``params``, ``best_params``, ``optim_configs``, ``model_state`` and
    ``best_model_state`` as arrays on the params' backend and device, and ``sampler`` as a NumPy ``Generator`` (or
    ``None``). Every array has the shape and dtype kind of what it replaces. Changes nothing: NumPy's global random
    state in the file is only tried (:func:`apply_global_rng` applies it). Raises ``ValueError`` naming the file.
    """
    arrays, meta = read_npz(path, _check_meta)
    file = os.fspath(path)
    tree = meta["tree"]
    M.check_schema(tree, _TREE, file, prefix="tree/")
    if update_rule is not None and meta["update_rule"] != update_rule:
        written = meta["update_rule"]
        raise ValueError(f"{file} was written with update_rule {written!r}, this Solver uses {update_rule!r}")
    specs = {name: Spec.of(p) for name, p in params.items()}
    out = dict(meta)
    new_params = _named(tree["params"], arrays, specs, file, "params", complete=True, label=lambda n: f"param {n!r}")
    out["params"] = {name: new_params[name] for name in params}
    best = tree["best_params"]
    out["best_params"] = _named(best, arrays, specs, file, "best_params", complete=bool(best))
    out["optim_configs"] = _optim_configs(tree["optim_configs"], arrays, specs, file, check_config)
    if meta["model_state_kind"] not in (None, state_kind):
        raise ValueError(
            f"{file} holds model state of kind {meta['model_state_kind']!r}, but the model exposes "
            f"{state_kind!r}; resume with the same kind of model"
        )
    kind = meta["model_state_kind"]
    if kind is not None:
        # The Solver saves the state whenever the model has some, and the best state together with best params.
        if tree["model_state"] is None:
            raise ValueError(f"{file}: metadata key 'tree/model_state' is null, but the model_state_kind is {kind!r}")
        if (tree["best_model_state"] is None) != (not best):
            raise ValueError(f"{file}: best_model_state and best_params must be saved together (one of them is empty)")
    out["model_state"] = _model_state_tree(tree["model_state"], arrays, kind, state_specs, file, "model state")
    out["best_model_state"] = _model_state_tree(
        tree["best_model_state"], arrays, kind, state_specs, file, "best model state"
    )
    # The Solver never makes params or state best unless every array is finite (README, Reliability).
    _check_finite(tree["best_params"], arrays, file, "best_params")
    _check_finite(tree["best_model_state"], arrays, file, "best model state")
    out["sampler"] = M.read_rng_state(meta["sampler"], file, "sampler")
    saved = rng_state(None)
    try:
        M.read_rng_state(meta["numpy_global_rng"], file, "numpy_global_rng")  # tried on the global state...
    finally:
        rng_from_state(saved)  # ...and put back: the caller applies it once everything is verified
    return out


def apply_global_rng(meta: dict) -> None:
    """Set NumPy's global random state to the one :func:`read_checkpoint` verified."""
    rng_from_state(meta["numpy_global_rng"])


def read_epoch(path) -> int:
    """The ``epoch`` of the checkpoint at ``path``, its format and that one key checked (see
    :func:`xpnet.solver.checkpoint_epoch`)."""
    _, meta = read_npz(path)
    file = os.fspath(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{file}: not an {_WHAT}: its format is {meta.get('format')!r}")
    epoch = meta.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"{file}: metadata key 'epoch' must be an int >= 0, got {epoch!r:.80}")
    return epoch
