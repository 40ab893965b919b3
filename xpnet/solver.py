"""CS231n's ``Solver`` on any Array API backend, with atomic checkpoints and exact resume.

The training data is moved to the model's backend once, at construction; each minibatch is gathered there with
``xp.take`` of an index array drawn on the host. Per-iteration losses stay on the device and are copied to the host
in batches (every ``print_every`` iterations and at each epoch end), so a GPU run does not wait on the host at every
step. A checkpoint holds everything the next iteration depends on (params, optimizer state, model state, both
random states, histories, counters), so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from . import _checkpoint, _progress, optim
from ._atomic import check_writable
from ._backend import asarray, backend_name, dtype_name, index_dtype, is_array, namespace, to_numpy
from ._compiled import CompiledStep
from ._random import check_resumable, check_seed, host_integers, host_rng, rng_state
from ._validation import check_int, check_progress, check_real, did_you_mean

__all__ = ["Solver", "NonFiniteLossError", "NonFiniteLossWarning", "check_data", "checkpoint_epoch"]

_DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")
_DEFAULTS = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "checkpoint_name": None,
    "print_every": 10,
    "verbose": True,
    "progress": None,
    "seed": None,
    "resume_from": None,
    "on_nonfinite": "stop",
    "compile": False,
}
_ON_NONFINITE = ("stop", "raise")


class NonFiniteLossWarning(RuntimeWarning):
    """The loss became NaN or infinite during :meth:`Solver.train` with ``on_nonfinite="stop"`` (the default).

    Emitted once; its message names the iteration and the epoch (``iteration K / T (epoch E / num_epochs)``).
    Training has stopped and the model holds the best params seen so far (or the ones training started from).
    """


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite during :meth:`Solver.train` with ``on_nonfinite="raise"``.

    When this is raised, the model already holds the best params (and non-trainable state) seen so far, or the ones
    training started from if no accuracy check had run yet.

    Parameters
    ----------
    message : str
        What happened and what to try.
    iteration : int
        Where: 1-based, counted over the whole run (kept as the attribute ``iteration``).
    epoch : int
        The 1-based epoch the iteration fell in (attribute ``epoch``).
    loss : float
        The non-finite value (attribute ``loss``).
    """

    def __init__(self, message: str, *, iteration: int, epoch: int, loss: float):
        super().__init__(message)
        self.iteration = iteration
        self.epoch = epoch
        self.loss = loss

    @classmethod
    def at(cls, loss: float, iteration: int, num_iterations: int, epoch: int, num_epochs: int, held: str | None):
        """The error for a non-finite ``loss`` at ``iteration`` in ``epoch``, with the message the Solver raises.

        Parameters
        ----------
        loss : float
            The non-finite value.
        iteration, num_iterations : int
            The 1-based iteration and the run's total.
        epoch, num_epochs : int
            The 1-based epoch and the run's total.
        held : str or None
            Which params the model holds now (None: those training started from).

        Returns
        -------
        NonFiniteLossError
        """
        return cls(
            f"loss is {loss} at iteration {iteration} / {num_iterations} (epoch {epoch} / {num_epochs}); "
            f"training stopped and model.params holds {held or 'the params training started from'}. Try a smaller "
            "learning_rate or weight_scale.",
            iteration=iteration,
            epoch=epoch,
            loss=loss,
        )


def _builtin_rule_name(rule: Callable) -> str | None:
    """The name of ``rule`` in :mod:`xpnet.optim`, or None for a rule of the user's own."""
    return next((name for name in optim.CONFIG_SPEC if getattr(optim, name) is rule), None)


def _resolve_rule(rule: Any) -> Callable:
    """The update rule function for a name in :mod:`xpnet.optim` or a callable."""
    if isinstance(rule, str):
        if rule not in optim.CONFIG_SPEC:
            raise ValueError(
                f"Invalid update_rule {rule!r}; expected one of {list(optim.CONFIG_SPEC)} "
                "or a callable (w, dw, config) -> (next_w, config)"
            )
        return getattr(optim, rule)
    if not callable(rule):
        raise TypeError(f"update_rule must be a rule name or a callable, got {type(rule).__name__}")
    return rule


def _rule_name(rule: Callable) -> str:
    """The name a checkpoint records for ``rule``, so resuming with another rule can be refused."""
    return getattr(rule, "__name__", type(rule).__name__)


def _copy_tree(obj: Any) -> Any:
    """``obj`` with every array (in nested dicts and lists) copied, so later updates cannot reach it."""
    if is_array(obj):
        return namespace(obj).asarray(obj, copy=True)
    if isinstance(obj, dict):
        return {k: _copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_copy_tree(v) for v in obj]
    return obj


def _state_arrays(obj: Any) -> list:
    """Every array in ``obj`` (nested dicts and lists), in order."""
    if is_array(obj):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in _state_arrays(v)]
    return []


def _host_floats(values: list) -> list[float]:
    """Python floats of 0-d arrays (one stacked transfer when they share a backend) or scalars."""
    if values and all(is_array(v) and v.ndim == 0 for v in values):
        try:
            xp = namespace(*values)
            return [float(v) for v in to_numpy(xp.stack(values)).tolist()]
        except TypeError:  # losses from several backends: convert one by one
            pass
    return [float(to_numpy(v)) if is_array(v) else float(v) for v in values]


def checkpoint_epoch(path) -> int:
    """The number of epochs a checkpoint written by :meth:`Solver.save_checkpoint` had trained (``K`` for
    ``{checkpoint_name}_epoch_K.npz``), read without a model or data: a script can compare it with the
    ``num_epochs`` it means to resume to before loading anything.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.

    Returns
    -------
    epoch : int >= 0

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        Naming the file, if it is damaged or not a Solver checkpoint. The file's arrays are verified against a
        model only by ``Solver(..., resume_from=path)``.
    """
    return _checkpoint.read_epoch(path)


def check_data(data) -> None:
    """Check that ``data`` is what :class:`Solver` (and :func:`xpnet.sweep.sweep`) train on: a dict with the keys
    ``X_train``, ``y_train``, ``X_val`` and ``y_val``.

    The arrays themselves are checked when a Solver moves them to its model's backend (shapes, finite features,
    integer labels in range), since that needs the model.

    Parameters
    ----------
    data : dict
        ``X_train`` (N_train, ...), ``y_train`` (N_train,), ``X_val`` (N_val, ...), ``y_val`` (N_val,); NumPy or
        any backend.

    Raises
    ------
    TypeError
        If ``data`` is not a dict (any ``Mapping``).
    ValueError
        Listing the keys ``data`` is missing.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict with keys {list(_DATA_KEYS)}, got {type(data).__name__}")
    missing = [k for k in _DATA_KEYS if k not in data]
    if missing:
        raise ValueError(f"data is missing {missing}; it must have the keys {list(_DATA_KEYS)}")


def _check_settings(kwargs: dict) -> dict:
    """The Solver's keyword arguments completed with the defaults, every one checked (ints as ints, ``lr_decay`` as
    a float); the model, the data and ``checkpoint_name`` are checked by the constructor."""
    unknown = sorted(set(kwargs) - set(_DEFAULTS))
    if unknown:
        hint = did_you_mean(unknown, _DEFAULTS)
        raise ValueError(f"Unrecognized arguments {unknown}{hint}; Solver accepts {sorted(_DEFAULTS)}")
    settings = {**_DEFAULTS, **kwargs}
    optim_config = settings["optim_config"]
    if optim_config is not None and not isinstance(optim_config, dict):
        raise TypeError(f"optim_config must be a dict, got {type(optim_config).__name__}")
    settings["lr_decay"] = check_real(settings["lr_decay"], "lr_decay", low=0, include_low=False)
    check_progress(settings["progress"])
    if settings["on_nonfinite"] not in _ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be 'stop' or 'raise', got {settings['on_nonfinite']!r}")
    if not isinstance(settings["compile"], bool):
        raise TypeError(f"compile must be True or False, got {settings['compile']!r}")
    for name, low in (("batch_size", 1), ("num_epochs", 0), ("print_every", 1)):
        settings[name] = check_int(settings[name], name, low=low)
    for name in ("num_train_samples", "num_val_samples"):
        settings[name] = check_int(settings[name], name, low=1, allow_none=True)
    return settings


def _features(X, name: str, ref):
    """Features ``X`` on the backend, device and dtype of array ``ref``, checked to be finite."""
    X = asarray(X, like=ref, dtype=ref.dtype)
    if X.ndim < 1:
        raise ValueError(f"{name} must have shape (N, ...), got a 0-d array")
    # One host check per data set, here: a NaN in the data would otherwise train "normally" into NaN weights
    # (ReLU and argmax hide it), and the training steps never read values back to look.
    xp = namespace(X)
    if X.shape[0] and not bool(xp.all(xp.isfinite(X))):
        bad = xp.reshape(~xp.isfinite(X), (X.shape[0], -1))
        first = int(xp.argmax(xp.astype(xp.any(bad, axis=1), xp.int8)))
        raise ValueError(
            f"{name} must hold finite values, got {int(xp.count_nonzero(bad))} NaN or infinite entries "
            f"(the first in row {first}) as {dtype_name(X.dtype)}; remove or repair those rows"
        )
    return X


def _labels(y, name: str, X, num_classes: Any):
    """Labels ``y`` for features ``X`` (on their backend and device) as index integers, checked to be in
    ``[0, num_classes)`` (``>= 0`` when ``num_classes`` is not an int)."""
    y = asarray(y, like=X)
    xp = namespace(y)
    if not xp.isdtype(y.dtype, "integral"):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if tuple(y.shape) != (X.shape[0],):
        raise ValueError(f"{name} must have shape ({X.shape[0]},) to match the features, got {tuple(y.shape)}")
    # Checked once here: on a GPU the loss does not re-check label ranges at every step.
    if y.shape[0]:
        low, high = int(xp.min(y)), int(xp.max(y))
        if low < 0 or (isinstance(num_classes, int) and high >= num_classes):
            expected = f"in [0, {num_classes})" if isinstance(num_classes, int) else ">= 0"
            raise ValueError(f"{name} must hold class labels {expected}, got values from {low} to {high}")
    return y if y.dtype == index_dtype(xp) else xp.astype(y, index_dtype(xp))


def _config_check(rule: Callable) -> Callable[[dict, str], None]:
    """``check(config, name)`` for the optimizer configs of update rule ``rule``, as the rule will check them:
    keys, hyperparameter ranges and step counts of a rule of :mod:`xpnet.optim` (:data:`xpnet.optim.CONFIG_SPEC`),
    and its state entries arrays or None. A rule of the user's own checks its config itself; only the
    ``learning_rate`` that ``lr_decay`` multiplies is checked for it."""
    builtin = _builtin_rule_name(rule)

    def check(config: dict, name: str) -> None:
        if builtin is None:
            if "learning_rate" in config:
                check_real(config["learning_rate"], f"{name}['learning_rate']")
            return
        optim.check_config(builtin, config, name)
        for key in optim.CONFIG_SPEC[builtin].arrays:
            if config.get(key) is not None and not is_array(config[key]):
                raise ValueError(f"{name}[{key!r}] must be an array or null, got {config[key]!r:.60}")

    return check


def _check_resumable(saved: dict, path, per_epoch: int, num_epochs: int) -> None:
    """``ValueError`` unless the checkpoint ``saved`` (read from ``path``) comes from a run with ``per_epoch``
    iterations per epoch that has not trained past ``num_epochs``."""
    if saved["iterations_per_epoch"] != per_epoch:
        raise ValueError(
            f"{path!s} was written with {saved['iterations_per_epoch']} iterations per epoch, this Solver has "
            f"{per_epoch} (X_train size // batch_size); use the same data and batch_size"
        )
    if saved["epoch"] > num_epochs:
        raise ValueError(
            f"{path!s} was written after epoch {saved['epoch']}, beyond this Solver's num_epochs={num_epochs}: "
            f"num_epochs is the total, so train() would train nothing; use num_epochs >= {saved['epoch']}"
        )


def _decay_learning_rates(configs: dict[str, dict], lr_decay: float) -> None:
    """CS231n's end-of-epoch decay: every config's ``learning_rate`` times ``lr_decay``."""
    if lr_decay == 1.0:
        return
    missing = [name for name, config in configs.items() if "learning_rate" not in config]
    if missing:
        raise ValueError(
            f"lr_decay needs a 'learning_rate' in the optimizer config of param {missing[0]!r}; put one in optim_config"
        )
    for config in configs.values():
        config["learning_rate"] *= lr_decay


def _score(model, X, y, idx, batch_size: int) -> tuple[float, bool]:
    """Fraction of ``X[idx]`` (all of ``X`` when ``idx`` is None) that ``model`` classifies as ``y[idx]``, in test
    mode in batches, and whether every score was finite: both in one host transfer."""
    xp = namespace(X)
    if idx is not None:
        X, y = xp.take(X, idx, axis=0), xp.take(y, idx, axis=0)
    N = X.shape[0]
    y_pred, finite = [], []
    for i in range(0, N, batch_size):
        scores = model.loss(X[i : min(i + batch_size, N), ...])
        y_pred.append(xp.argmax(scores, axis=1))
        finite.append(xp.all(xp.isfinite(scores)))
    # NaN scores have argmax 0, so they still "classify": the finiteness flag travels with the count.
    correct = xp.count_nonzero(xp.concat(y_pred) == y)
    all_finite = xp.all(xp.stack(finite))
    counts = [xp.astype(correct, index_dtype(xp)), xp.astype(all_finite, index_dtype(xp))]
    count, ok = to_numpy(xp.stack(counts)).tolist()
    return count / N, bool(ok)


# The settings are **kwargs, as in CS231n (so a misspelling gets a did-you-mean); numpydoc would count each one
# documented under "Other Parameters" as unknown (PR02).
class Solver:  # numpydoc ignore=PR02
    """Trains a classification model with minibatch stochastic gradient descent, as CS231n's ``Solver``.

    Usage::

        solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                        lr_decay=0.95, num_epochs=10, batch_size=100, print_every=100)
        solver.train()

    ``X_train`` and ``X_val`` must be finite, and ``optim_config`` is checked against a built-in rule's accepted
    keys and ranges, once, here: bad data or a misspelled key is a ``ValueError`` or ``TypeError`` before training.

    Parameters
    ----------
    model : object
        Has ``params`` (dict name -> array, all on one backend) and ``loss(X, y=None)``, which returns scores of
        shape (N, C) when ``y`` is None (test mode) and ``(loss, grads)`` otherwise (a 0-d array or float, and a
        dict with one gradient per param). Optional ``get_state()`` / ``set_state(d)`` expose non-trainable arrays
        (batchnorm running statistics) for checkpoints; without them the arrays in ``model.bn_params`` (a list of
        dicts, as in CS231n's models) are checkpointed.
    data : dict
        ``X_train`` (N_train, ...), ``y_train`` (N_train,) integer labels, ``X_val``, ``y_val``; NumPy or any
        backend. Moved once to the model's backend and device, features cast to the first param's dtype.
    **kwargs
        The optional settings below, by keyword, as in CS231n. A misspelled one is a ``ValueError`` naming the
        closest setting.

    Attributes
    ----------
    loss_history : list of float
        One per iteration.
    train_acc_history, val_acc_history : list of float
        One per check: after the first iteration and at each epoch end.
    best_val_acc : float
        The best validation accuracy so far.
    best_params : dict
        The params that scored ``best_val_acc``.
    epoch : int
        Epochs trained so far.
    optim_configs : dict
        Param name -> its update rule's config.

    Other Parameters
    ----------------
    update_rule : str or callable, default 'sgd'
        The name of a rule in :mod:`xpnet.optim` or a callable with that signature.
    optim_config : dict, optional
        Hyperparameters given to the update rule for every param (each param gets a copy).
    lr_decay : float, default 1.0
        Every param's ``learning_rate`` is multiplied by this after each epoch.
    batch_size : int, default 100
        Minibatch size.
    num_epochs : int, default 10
        Epochs to train in total.
    num_train_samples : int or None, default 1000
        Training points used to check training accuracy at each epoch (None: all).
    num_val_samples : int or None, default None
        Validation points used to check validation accuracy (None: all).
    checkpoint_name : str or path, optional
        If given, the whole training state is saved to ``f"{checkpoint_name}_epoch_{epoch}.npz"`` at the end of
        each epoch (atomically: a crash leaves the previous file whole). Missing folders (as in
        ``'checkpoints/run1'``) are created when the Solver is built, and a file is written and removed there, so
        an unwritable path is an ``OSError`` naming ``checkpoint_name`` now rather than after the first epoch.
        Setting the attribute later (as a sweep does) makes the same check.
    print_every : int, default 10
        The loss is printed (and copied to the host) every this many iterations.
    verbose : bool, default True
        CS231n's prints: ``(Iteration t / T) loss: ...`` every ``print_every`` iterations and ``(Epoch e / E)
        train acc: ...; val_acc: ...`` at each check, as plain lines on stdout.
    progress : bool or None, default None
        A tqdm progress bar (with the last loss and accuracies) on stderr, or a widget in a notebook. None: when
        ``verbose`` is True and the bar can draw in place, i.e. stderr is an interactive terminal, or the code
        runs in a Jupyter notebook that has ``ipywidgets``; no bar when output goes to a file, a CI log or a
        notebook without ``ipywidgets`` (whose bar would be hundreds of text fragments). True draws one anyway
        (as text where widgets are missing), even with ``verbose=False``; False never does.
    seed : int, numpy.random.Generator or None, default None
        Seeds the Solver's own minibatch sampler (an int >= 0, a NumPy integer or a ``Generator``). None draws
        from NumPy's global state with ``np.random.choice``, as CS231n does, so ``np.random.seed(231)``
        reproduces CS231n's batches. With a ``checkpoint_name``, a Generator must be on one of NumPy's bit
        generators (MT19937, PCG64, PCG64DXSM, Philox, SFC64), whose state checkpoints save and restore.
    resume_from : str or path, optional
        A checkpoint written by this class, given to :meth:`load_checkpoint`: training continues where it
        stopped (params, optimizer state, model state, histories, epoch, both random states) and ``train()`` runs
        the remaining epochs up to ``num_epochs``. The sampler state comes from the checkpoint, not from
        ``seed``, and NumPy's global random state is set to the checkpoint's (unseeded dropout draws from it).
        The whole file is verified before anything changes: a damaged or hand-edited checkpoint, or one whose
        arrays differ in shape or dtype kind from the model's, is a ``ValueError`` naming the file and what is
        wrong.
    on_nonfinite : {'stop', 'raise'}, default 'stop'
        What :meth:`train` does when the loss becomes NaN or infinite: ``'stop'`` warns with
        :class:`NonFiniteLossWarning` and returns, ``'raise'`` raises :class:`NonFiniteLossError`; either way the
        best params are put back first.
    compile : bool, default False
        Run each training step (loss, gradients, every update, batchnorm state) as one compiled function:
        ``torch.compile`` on torch tensors, ``jax.jit`` on JAX arrays. The numbers are eager's to float rounding
        (dropout masks are drawn on the host as an eager step draws them and passed in); checkpoints and resume
        are unchanged. A ``ValueError`` naming ``compile`` on backends without a compiler (NumPy, CuPy,
        array_api_strict) and for a custom update rule. The first steps pay for compilation.

    Notes
    -----
    Beyond CS231n: the model's non-trainable state (batchnorm running statistics) is kept with the best params and
    restored with them, so the restored model scores ``best_val_acc`` on the validation set again.
    """

    def __init__(self, model, data, **kwargs):
        settings = _check_settings(kwargs)
        params = getattr(model, "params", None)
        if not isinstance(params, dict) or not params:
            raise TypeError(f"model.params must be a non-empty dict of arrays, got {params!r:.80}")
        namespace(*params.values())  # one backend for all params, or a TypeError naming them
        check_data(data)

        self.model = model
        self.update_rule = _resolve_rule(settings["update_rule"])
        self.optim_config = dict(settings["optim_config"] or {})
        if _builtin_rule_name(self.update_rule) is not None:
            # The rules check their config at every step too; here a typo is reported before training starts.
            _config_check(self.update_rule)(self.optim_config, "optim_config")
        self.lr_decay: float = settings["lr_decay"]
        self.on_nonfinite: str = settings["on_nonfinite"]
        self.batch_size: int = settings["batch_size"]
        self.num_epochs: int = settings["num_epochs"]
        self.num_train_samples: int | None = settings["num_train_samples"]
        self.num_val_samples: int | None = settings["num_val_samples"]
        self._checkpoint_name = None  # set below, once the data is checked: setting it probes the folder
        self.print_every = settings["print_every"]
        self.verbose = bool(settings["verbose"])
        self.progress = settings["progress"]
        self._print = print  # train() points it at tqdm.write while a terminal bar is drawn
        self.seed = check_seed(settings["seed"], generator=True)
        self.resume_from = settings["resume_from"]
        self.compile: bool = settings["compile"]
        # Built before the data is moved: a backend without a compiler is refused first.
        self._compiled_step = CompiledStep(model, self.update_rule) if self.compile else None

        ref = self._reference()
        num_classes = getattr(model, "num_classes", None)
        self.X_train = _features(data["X_train"], "X_train", ref)
        self.y_train = _labels(data["y_train"], "y_train", self.X_train, num_classes)
        self.X_val = _features(data["X_val"], "X_val", ref)
        self.y_val = _labels(data["y_val"], "y_val", self.X_val, num_classes)
        if self.X_train.shape[0] == 0 or self.X_val.shape[0] == 0:
            raise ValueError("X_train and X_val must hold at least one example each")
        self.checkpoint_name = settings["checkpoint_name"]

        self._reset()
        if self.resume_from is not None:
            self.load_checkpoint(self.resume_from)

    @property
    def checkpoint_name(self):
        """Prefix of the files :meth:`train` writes at each epoch end, ``{checkpoint_name}_epoch_{epoch}.npz``, or
        None for none. Setting it (in the constructor or later, as a sweep does) creates missing folders and writes
        and removes a file there, so an unwritable path is an ``OSError`` naming ``checkpoint_name`` at once rather
        than after the first epoch; the name is kept only when that succeeds. A ``seed`` Generator on a bit generator
        no resume could restore (not one of NumPy's own) is a ValueError here, before the folder is touched."""
        return self._checkpoint_name

    @checkpoint_name.setter
    def checkpoint_name(self, value) -> None:
        if value is not None:
            check_resumable(self.seed, "seed")  # before the folder is touched
            check_writable(value, name="checkpoint_name", suffix="_epoch_0.npz")
        self._checkpoint_name = value

    def _reference(self):
        """The first param: its backend, device and dtype are where data goes."""
        return next(iter(self.model.params.values()))

    def _reset(self) -> None:
        """Set up the book-keeping of a new run (CS231n's ``_reset``). Called by ``__init__``."""
        self.epoch = 0
        self.best_val_acc: float = 0
        self.best_params: dict[str, Any] = {}
        self._best_model_state = None  # the model state that goes with best_params
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}
        self._iteration = 0
        self._pending_losses: list[Any] = []  # device 0-d arrays not yet copied into loss_history
        self._rng = host_rng(self.seed)

    def _iterations_per_epoch(self) -> int:
        return max(self.X_train.shape[0] // self.batch_size, 1)

    def _draw(self, n: int, size: int):
        """``size`` indices into ``range(n)`` with replacement, drawn on the host, on the data's backend."""
        return asarray(host_integers(n, size, self._rng), like=self.X_train)

    def _step(self) -> None:
        """One gradient update of every param on a random minibatch (CS231n's ``_step``)."""
        xp = namespace(self.X_train)
        idx = self._draw(self.X_train.shape[0], self.batch_size)
        X_batch, y_batch = xp.take(self.X_train, idx, axis=0), xp.take(self.y_train, idx, axis=0)
        if self._compiled_step is not None:
            loss, self.optim_configs = self._compiled_step(X_batch, y_batch, self.optim_configs)
            self._pending_losses.append(loss)
            self._iteration += 1
            return
        loss, grads = self.model.loss(X_batch, y_batch)
        params = self.model.params
        missing = [p for p in params if p not in grads]
        if missing:
            raise ValueError(f"model.loss returned no gradient for param {missing[0]!r}; got grads for {sorted(grads)}")
        # Every update is computed (on a copy of its config) before any is stored, so a rule that raises for one
        # param leaves all params and optimizer states as they were.
        updates = {p: self.update_rule(w, grads[p], dict(self.optim_configs[p])) for p, w in params.items()}
        for p, (w, config) in updates.items():
            params[p], self.optim_configs[p] = w, config
        self._pending_losses.append(loss)
        self._iteration += 1

    def _params_finite(self) -> bool:
        """Whether every param and every floating array of the model state is finite: one stacked host transfer,
        made only at accuracy checks. An infinite running variance can give finite scores (x / sqrt(inf) is 0), so
        the state is checked too: best arrays that are not finite would make the checkpoint unloadable."""
        params = list(self.model.params.values())
        xp = namespace(*params)
        state = _state_arrays(_checkpoint.model_state(self.model)[1])
        arrays = params + [a for a in state if xp.isdtype(a.dtype, ("real floating", "complex floating"))]
        return bool(xp.all(xp.stack([xp.all(xp.isfinite(a)) for a in arrays])))

    def _flush_losses(self) -> int | None:
        """Copy pending losses into ``loss_history`` in one transfer; index of the first non-finite one, if any."""
        if not self._pending_losses:
            return None
        start = len(self.loss_history)
        self.loss_history.extend(_host_floats(self._pending_losses))
        self._pending_losses = []
        for i in range(start, len(self.loss_history)):
            if not math.isfinite(self.loss_history[i]):
                return i
        return None

    def _diverged(self, index: int, fallback: tuple | None, num_iterations: int) -> NonFiniteLossError:
        """Restore the best params, end the histories at the non-finite ``loss_history[index]``, and build the
        error (or the warning's message) for it."""
        loss = self.loss_history[index]
        iteration, epoch = index + 1, index // self._iterations_per_epoch() + 1
        # Losses of the updates after the bad one (up to print_every of them) are dropped with those updates.
        del self.loss_history[iteration:]
        self._iteration = iteration
        held = f"the best params so far (val acc {self.best_val_acc:f})" if self.best_params else None
        self._restore_best(fallback)
        return NonFiniteLossError.at(loss, iteration, num_iterations, epoch, self.num_epochs, held)

    def _snapshot(self) -> tuple[dict, Any]:
        """Copies of the params and of the model's non-trainable state."""
        return _copy_tree(self.model.params), _copy_tree(_checkpoint.model_state(self.model)[1])

    def _restore_best(self, fallback: tuple | None = None) -> None:
        """Put the best params and their model state into the model (``fallback`` if there are none yet)."""
        if self.best_params:
            params, state = self.best_params, self._best_model_state
        elif fallback is not None:
            params, state = fallback
        else:
            return
        self.model.params.update(params)
        if state is not None:
            _checkpoint.set_model_state(self.model, _checkpoint.model_state(self.model)[0], _copy_tree(state))

    def check_accuracy(self, X, y, num_samples=None, batch_size=100) -> float:
        """Fraction of ``X`` the model classifies as ``y``, computed in test mode in batches.

        Parameters
        ----------
        X : array of shape (N, ...)
            Finite features, NumPy or any backend (moved to the model's).
        y : array of shape (N,)
            Integer labels.
        num_samples : int, optional
            With ``num_samples`` < N, that many points are drawn with replacement by the Solver's sampler, as in
            CS231n (None: all N).
        batch_size : int, default 100
            How many points the model scores at once.

        Returns
        -------
        float
            The accuracy, a Python float.
        """
        return self._accuracy(X, y, num_samples, batch_size)[0]

    def _accuracy(self, X, y, num_samples, batch_size) -> tuple[float, bool]:
        """:meth:`check_accuracy`, and whether every score was finite (both in one host transfer)."""
        if not ((X is self.X_train and y is self.y_train) or (X is self.X_val and y is self.y_val)):
            X = _features(X, "X", self._reference())  # the Solver's own data was checked once, at construction
            y = _labels(y, "y", X, getattr(self.model, "num_classes", None))
        batch_size = check_int(batch_size, "batch_size", low=1)
        num_samples = check_int(num_samples, "num_samples", low=1, allow_none=True)
        N = X.shape[0]
        if N == 0:
            raise ValueError("X must hold at least one example, got 0")
        idx = self._draw(N, num_samples) if num_samples is not None and N > num_samples else None
        return _score(self.model, X, y, idx, batch_size)

    def train(self) -> None:
        """Train until ``num_epochs`` epochs are done (continuing a resumed or earlier run), then put the params
        with the best validation accuracy into ``model.params``.

        When the loss becomes NaN or infinite, training stops at once and the best params so far (or the ones
        training started from, if no accuracy check was finite and improving yet) are put back; ``loss_history``
        then ends with the non-finite loss. With ``on_nonfinite="stop"`` (the default) one
        :class:`NonFiniteLossWarning` naming the iteration and epoch is emitted and ``train`` returns normally, so a
        loop over hyperparameters goes on; with ``on_nonfinite="raise"`` :class:`NonFiniteLossError` (a
        ``FloatingPointError``) is raised. Losses are checked when they are copied to the host, every
        ``print_every`` iterations and at each epoch end (no step waits on the device to look), so up to
        ``print_every`` further updates may run first. The optimizer state is that of the diverged run: to try
        again, build a new Solver.
        """
        per_epoch = self._iterations_per_epoch()
        num_iterations = self.num_epochs * per_epoch
        fallback = None if self.best_params else self._snapshot()
        postfix: dict[str, str] = {}
        bar = self._open_bar(num_iterations)
        diverged = None
        try:
            while self._iteration < num_iterations:
                t = self._iteration
                self._step()
                epoch_end = (t + 1) % per_epoch == 0
                if t % self.print_every == 0 or epoch_end:
                    bad = self._flush_losses()
                    if bad is not None:
                        diverged = self._diverged(bad, fallback, num_iterations)
                        break
                    postfix["loss"] = f"{self.loss_history[-1]:.4f}"
                    if self.verbose and t % self.print_every == 0:
                        self._print(f"(Iteration {t + 1} / {num_iterations}) loss: {self.loss_history[-1]:f}")
                if epoch_end:
                    self.epoch += 1
                    _decay_learning_rates(self.optim_configs, self.lr_decay)
                # The last iteration is always an epoch end, so CS231n's "or last_it" is implied.
                if t == 0 or epoch_end:
                    self._check_and_keep_best(postfix)
                if epoch_end:
                    self._save_checkpoint()
                if bar is not None:
                    bar.set_postfix(postfix, refresh=False)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            self._print = print
        if diverged is not None:
            if self.on_nonfinite == "raise":
                raise diverged
            warnings.warn(str(diverged), NonFiniteLossWarning, stacklevel=2)
            return
        self._restore_best()

    def _open_bar(self, num_iterations: int):
        """The progress bar of one :meth:`train` call (None for none); points ``_print`` at what keeps it whole."""
        self._print = print
        if self.progress is None and not self.verbose:
            return None  # CS231n's verbose=False is silent: a hyperparameter sweep draws no bars
        bar_class = _progress.bar_class(self.progress)
        if bar_class is None:
            return None
        bar = bar_class(
            total=num_iterations,
            initial=min(self._iteration, num_iterations),
            unit="it",
            dynamic_ncols=True,
        )
        if bar_class is _progress.terminal_tqdm:
            # In a terminal a plain print would land on the bar's line; tqdm.write clears the bar, prints the line
            # to stdout and redraws the bar under it. A notebook widget sits apart from the text, so print suffices.
            self._print = _progress.terminal_tqdm.write
        return bar

    def _check_and_keep_best(self, postfix: dict) -> None:
        """CS231n's accuracy check: record both accuracies, print them, keep the params if validation improved.

        A check whose scores or params are not finite never becomes best: NaN scores have argmax 0 and would
        otherwise score the fraction of class-0 labels. This is where the params are checked, at a host sync the
        check makes anyway, not at every step.
        """
        train_acc, train_finite = self._accuracy(self.X_train, self.y_train, self.num_train_samples, 100)
        val_acc, val_finite = self._accuracy(self.X_val, self.y_val, self.num_val_samples, 100)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        postfix.update(train_acc=f"{train_acc:.3f}", val_acc=f"{val_acc:.3f}")
        if self.verbose:
            self._print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:f}; val_acc: {val_acc:f}")
        if val_acc > self.best_val_acc and train_finite and val_finite and self._params_finite():
            self.best_val_acc = val_acc
            self.best_params, self._best_model_state = self._snapshot()

    def _save_checkpoint(self) -> None:
        """CS231n's hook: the epoch's checkpoint file, if ``checkpoint_name`` is set."""
        if self.checkpoint_name is not None:
            self.save_checkpoint(f"{self.checkpoint_name}_epoch_{self.epoch}.npz")

    def save_checkpoint(self, path) -> None:
        """Save the whole training state to ``path`` (a portable ``.npz``, written atomically and durably).

        Parameters
        ----------
        path : str or path
            The file to write.

        Notes
        -----
        The file holds params, every param's optimizer config (arrays and scalars such as ``t`` and the decayed
        ``learning_rate``), best params and accuracy, histories, epoch and iteration counters, the sampler's and
        NumPy's global random states, and the model's non-trainable state. ``Solver(..., resume_from=path)``
        continues from it, on any backend.
        """
        self._flush_losses()
        kind, state = _checkpoint.model_state(self.model)
        trees = {
            "params": self.model.params,
            "best_params": self.best_params,
            "optim_configs": self.optim_configs,
            "model_state": state,
            "best_model_state": self._best_model_state,
        }
        meta = {
            "backend": backend_name(namespace(self._reference())),
            "update_rule": _rule_name(self.update_rule),
            "epoch": self.epoch,
            "iteration": self._iteration,
            "iterations_per_epoch": self._iterations_per_epoch(),
            "best_val_acc": self.best_val_acc,
            "loss_history": self.loss_history,
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
            "sampler": None if self._rng is None else rng_state(self._rng),
            "numpy_global_rng": rng_state(None),
            "model_state_kind": kind,
        }
        _checkpoint.write_checkpoint(path, trees=trees, meta=meta)

    def load_checkpoint(self, path) -> None:
        """Continue from a checkpoint written by :meth:`save_checkpoint` (what ``resume_from=path`` does).

        Params, optimizer configs, the model's non-trainable state, best params and accuracy, histories, epoch and
        iteration counters and the sampler's state come from the file, and NumPy's global random state is set to
        the one it holds; :meth:`train` then runs the remaining epochs up to ``num_epochs``. The whole file is
        verified before anything changes, so a call that raises leaves the Solver and the model as they were.

        Parameters
        ----------
        path : str or os.PathLike
            A checkpoint, e.g. ``f"{checkpoint_name}_epoch_{K}.npz"``; written on any backend.

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path``.
        ValueError
            Naming the file and what is wrong: damaged or hand-edited, not a Solver checkpoint, arrays whose shape
            or dtype kind differs from the model's, an optimizer config its update rule refuses, or written with
            another update rule, another number of iterations per epoch, or more epochs than ``num_epochs``.
        """
        kind, specs = _checkpoint.state_specs(self.model)
        rule, check = _rule_name(self.update_rule), _config_check(self.update_rule)
        saved = _checkpoint.read_checkpoint(
            path, params=self.model.params, state_kind=kind, state_specs=specs, update_rule=rule, check_config=check
        )
        _check_resumable(saved, path, self._iterations_per_epoch(), self.num_epochs)
        if saved["model_state"] is not None:
            _checkpoint.set_model_state(self.model, saved["model_state_kind"], saved["model_state"])
        self.model.params.update(saved["params"])
        self.best_params = saved["best_params"]
        self.optim_configs = saved["optim_configs"]
        self._best_model_state = saved["best_model_state"]
        self.epoch = saved["epoch"]
        self._iteration = saved["iteration"]
        self.best_val_acc = saved["best_val_acc"]
        self.loss_history = [float(v) for v in saved["loss_history"]]
        self.train_acc_history = [float(v) for v in saved["train_acc_history"]]
        self.val_acc_history = [float(v) for v in saved["val_acc_history"]]
        self._pending_losses = []
        self._rng = saved["sampler"]
        _checkpoint.apply_global_rng(saved)
