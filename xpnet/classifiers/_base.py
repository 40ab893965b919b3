"""What every xpnet model shares: backend and dtype set-up, non-trainable state, and portable save/load.

A model keeps its trainable arrays in ``model.params`` (CS231n's contract: names such as ``'W1'``, ``'gamma1'``) and
its non-trainable arrays (batchnorm running statistics) in the layer dicts CS231n uses (``model.bn_params``);
``get_state`` / ``set_state`` expose the latter by stable names so the Solver can checkpoint them. ``save`` writes
both, plus the constructor configuration, to one ``.npz`` that any backend can load.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .._backend import (
    asarray,
    backend_name,
    dtype_name,
    index_dtype,
    is_array,
    is_host_resident,
    is_tracing,
    load_namespace,
    namespace,
    resolve_dtype,
)
from .._backend import device as _device_of
from .._model_file import PARAMS_PREFIX, STATE_PREFIX, SavedModel, read_model, write_model
from .._npz import check_array
from .._random import host_normal
from .._validation import check_keys

__all__ = ["Model", "load_model"]

_REGISTRY: dict[str, type[Model]] = {}


class Model:
    """Base of the xpnet classifiers.

    Subclasses implement ``_configure(**config, xp, device)`` (validate arguments and set attributes, drawing no
    random numbers), ``_param_specs()`` (name -> (shape, init) in CS231n's draw order, init one of ``'normal'``,
    ``'zeros'``, ``'ones'``), ``config()`` and ``loss(X, y=None)``; models with non-trainable arrays override
    ``_state_slots()``.
    """

    xp: Any
    device: Any
    dtype: Any
    params: dict
    weight_scale: float
    num_classes: int
    _configure: Callable[..., None]  # each subclass's own keywords, so it is declared, not defined, here

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def _set_backend(self, xp: Any, device: Any, dtype: Any) -> None:
        """Resolve ``xp`` (module, name or namespace), ``device`` and a real floating ``dtype``."""
        self.xp = load_namespace(xp)
        self.device = device
        dt = resolve_dtype(self.xp, dtype)
        # Compared with the namespace's own dtypes first: isdtype() of a list or an int is a raw AttributeError on
        # some backends (torch) and a TypeError on others.
        known = self.xp.__array_namespace_info__().dtypes().values()
        if dt is not None and not any(dt == d for d in known):
            raise TypeError(f"dtype must be a dtype or a dtype name such as 'float32', got {dtype!r}")
        if dt is None or not self.xp.isdtype(dt, "real floating"):
            raise ValueError(f"dtype must be a real floating dtype such as 'float32' or 'float64', got {dtype!r}")
        self.dtype = dt

    def _init_params(self) -> None:
        """Draw the weights on the host from NumPy's global state in CS231n's order (so ``np.random.seed(231)``
        reproduces CS231n's weights), one transfer per weight; biases and norm parameters are made in place."""
        self.params = {}
        for name, (shape, init) in self._param_specs().items():
            if init == "normal":
                host = host_normal(shape) * self.weight_scale
                self.params[name] = asarray(host, xp=self.xp, device=self.device, dtype=self.dtype)
            else:
                fill = self.xp.zeros if init == "zeros" else self.xp.ones
                self.params[name] = fill(shape, dtype=self.dtype, device=self.device)
        self.device = _device_of(next(iter(self.params.values())))

    def _param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        raise NotImplementedError

    def config(self) -> dict:
        """The constructor arguments (JSON-able) that rebuild this model's architecture and settings."""
        raise NotImplementedError

    def _accept(self, value, name: str):
        """``value`` if it is an array of the model's backend on the model's device, or a NumPy array (which any
        model accepts: :meth:`_moved` puts it on the model's backend); otherwise a ``TypeError`` naming ``name`` and
        both backends, or a ``ValueError`` naming both devices. Devices are compared only where both are known: a
        JAX tracer has none."""
        if is_array(value):
            xp = namespace(value)
            if xp is self.xp:
                here, home = _device_of(value), _device_of(self._reference())
                # A JAX tracer (under jax.jit) has no device (array_api_compat gives None): there is nothing to
                # compare, and jit itself places traced inputs with the closed-over params.
                if here is not None and home is not None and here != home:
                    raise ValueError(
                        f"{name} is on device {here!r}, the model's params on {home!r}; move it with "
                        f"xpnet.asarray({name}, like=model.params['W1'])"
                    )
                return value
            if backend_name(xp) == "numpy":
                return value
        model = backend_name(self.xp)
        expected = f"an array of the model's backend ({model})" + ("" if model == "numpy" else " or a NumPy array")
        got = f"an array of {backend_name(namespace(value))}" if is_array(value) else type(value).__name__
        raise TypeError(
            f"{name} must be {expected}, got {got}; move it with xpnet.asarray({name}, like=model.params['W1'])"
        )

    def _moved(self, value, dtype=None):
        """``value`` (accepted by :meth:`_accept`) on the model's backend and device, cast to ``dtype`` if given: a
        NumPy array for a model on another backend is transferred here, once."""
        if namespace(value) is self.xp:
            return value if dtype is None or value.dtype == dtype else self.xp.astype(value, dtype)
        return asarray(value, like=self._reference(), dtype=dtype)

    def _reference(self):
        """A param: inputs go to its backend and device (where the params are now, even if moved by hand)."""
        return next(iter(self.params.values()))

    def _input(self, X, name: str = "X"):
        """``X`` on the model's backend and device, in the model's dtype. A NumPy ``X`` is moved there (so a
        notebook's NumPy data works with a model on any backend); an array of another backend is a ``TypeError``."""
        X = self._accept(X, name)
        if not namespace(X).isdtype(X.dtype, ("bool", "integral", "real floating")):
            raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
        return self._moved(X, self.dtype)

    def _check_batch(self, X, y):
        """Refuse an empty batch and bad labels before a loss computes (and so changes) anything; return ``y`` on
        the model's backend and device (None stays None).

        ``y`` (or None) must be a NumPy array or an array of the model's backend with shape (N,) and an integer
        dtype; its values must lie in ``[0, num_classes)``. The range is read back only from host memory: on a GPU
        that would stall every training step (the Solver checks its labels once, up front). Under a compiler
        (``torch.compile``, ``jax.jit``) no value can be read, so the range check is skipped there; the eager path
        always makes it. NumPy labels are
        checked on the host, then moved as int64 (every backend indexes with it).
        """
        N = X.shape[0]
        if N == 0:
            raise ValueError(f"X must hold at least one example, got shape {tuple(X.shape)}")
        if y is None:
            return None
        y = self._accept(y, "y")
        if tuple(y.shape) != (N,):
            raise ValueError(f"y must have shape ({N},), one label per row of X, got {tuple(y.shape)}")
        xp = namespace(y)
        if not xp.isdtype(y.dtype, "integral"):
            raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
        C = self.num_classes
        # Asked of the result, not of y: labels closed over by a jitted function are concrete, their comparison is not.
        out_of_range = xp.any((y < 0) | (y >= C)) if is_host_resident(y) else None
        if out_of_range is not None and not is_tracing(out_of_range) and bool(out_of_range):
            raise ValueError(
                f"y must hold class labels in [0, {C}) (num_classes), got values from {int(xp.min(y))} to "
                f"{int(xp.max(y))}"
            )
        return y if xp is self.xp else self._moved(y, index_dtype(self.xp))

    def _own(self, value):
        """A fresh copy of ``value`` (any backend, or NumPy) on the model's backend, device and dtype."""
        return self.xp.asarray(asarray(value, xp=self.xp, device=self.device, dtype=self.dtype), copy=True)

    def _state_slots(self) -> list[tuple[str, dict, tuple[str, ...], tuple[int, ...]]]:
        """``(prefix, layer dict, keys, shape)`` for each layer dict holding non-trainable arrays of that shape."""
        return []

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every non-trainable array the model can hold (e.g. ``'bn1.running_mean'``), those a
        training pass has not created yet included: the names and shapes :meth:`set_state` accepts."""
        return {f"{prefix}.{key}": shape for prefix, _, keys, shape in self._state_slots() for key in keys}

    def get_state(self) -> dict:
        """Copies of the non-trainable arrays (e.g. ``'bn1.running_mean'``), for checkpoints.

        Only arrays that exist are returned: batchnorm running statistics appear after the first training pass.
        """
        return {name: self.xp.asarray(value, copy=True) for name, value in self._state_arrays().items()}

    def _state_arrays(self) -> dict:
        """The non-trainable arrays themselves, not copies: for a compiled step, which reads them and never writes
        into them (its new state comes back as new arrays, which :meth:`_adopt_state` puts in place)."""
        return {f"{p}.{key}": slot[key] for p, slot, keys, _ in self._state_slots() for key in keys if key in slot}

    def _adopt_state(self, state: dict) -> None:
        """Put ``state``'s arrays in place without copying: new arrays on the model's backend, device and dtype
        with the names and shapes of :meth:`_state_arrays` (a compiled step's output), never the caller's."""
        slots = {f"{p}.{key}": slot for p, slot, keys, _ in self._state_slots() for key in keys}
        for name, value in state.items():
            slots[name][name.rsplit(".", 1)[1]] = value

    def set_state(self, state: dict) -> None:
        """Make :meth:`get_state` equal ``state`` (arrays of any backend are copied onto the model's).

        Names the model does not have raise ``ValueError``; state arrays the model has but ``state`` lacks are
        dropped, so restoring a checkpoint taken before the first training pass restores that too.

        Parameters
        ----------
        state : dict
            Name -> array, as :meth:`get_state` returns.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of arrays as returned by get_state(), got {type(state).__name__}")
        slots = {
            f"{prefix}.{key}": (slot, key, shape) for prefix, slot, keys, shape in self._state_slots() for key in keys
        }
        unknown = sorted(set(state) - set(slots))
        if unknown:
            raise ValueError(f"state names {unknown} are not state of this model; expected some of {sorted(slots)}")
        for name, value in state.items():
            shape = slots[name][2]
            if not is_array(value):
                raise TypeError(f"state[{name!r}] must be an array of shape {shape}, got {type(value).__name__}")
            if tuple(value.shape) != shape:
                raise ValueError(f"state[{name!r}] must have shape {shape}, got {tuple(value.shape)}")
        for name, (slot, key, _) in slots.items():
            if name in state:
                slot[key] = self._own(state[name])
            else:
                slot.pop(key, None)

    def save(self, path) -> None:
        """Write params, state and configuration to one portable ``.npz`` at ``path`` (atomically and durably).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write.
        """
        write_model(
            path, cls_name=type(self).__name__, config=self.config(), params=self.params, state=self.get_state()
        )

    @classmethod
    def load(cls, path, *, xp: Any = None, device: Any = None):
        """A model saved by :meth:`save`, on backend ``xp`` and ``device``; draws no random numbers.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.npz`` file :meth:`save` wrote.
        xp : module, str or namespace, optional
            The backend for the params (NumPy by default).
        device : device, optional
            The device on ``xp`` (its default by default).

        Returns
        -------
        Model
            An instance of this class.

        Raises
        ------
        FileNotFoundError
            For a missing file.
        ValueError
            Naming the file if it is damaged, holds another model class or no model, or if its configuration,
            params or state do not fit together.
        """
        saved = read_model(path)
        name = saved.cls_name
        if name not in _REGISTRY:
            raise ValueError(f"{saved.file} holds a model of unknown class {name!r}; known: {sorted(_REGISTRY)}")
        target = _REGISTRY[name]
        if cls is not Model and target is not cls:
            raise ValueError(
                f"{saved.file} holds a {name}, not a {cls.__name__}; load it with {name}.load(...) or "
                "xpnet.classifiers.load_model(...)"
            )
        return target._from_saved(saved, xp=xp, device=device)

    @classmethod
    def _from_saved(cls, saved: SavedModel, *, xp: Any, device: Any):
        """The model in ``saved``: its config keys, then every array's shape and dtype kind are checked first."""
        file = saved.file
        accepted = [p for p in inspect.signature(cls._configure).parameters if p not in ("self", "xp", "device")]
        check_keys(saved.config, f"{file}: config", required=accepted, allowed=accepted, owner=f"a {cls.__name__}")
        if "dtype" in saved.config and not isinstance(saved.config["dtype"], str):  # config() saves its name
            got = saved.config["dtype"]
            raise ValueError(f"{file}: config['dtype'] must be a dtype name such as 'float32', got {got!r}")
        xp = load_namespace(xp)  # a bad xp is the caller's mistake, not the file's
        model = cls.__new__(cls)
        try:
            model._configure(**saved.config, xp=xp, device=device)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{file}: config is invalid: {err}") from None
        specs = model._param_specs()
        if set(saved.params) != set(specs):
            raise ValueError(
                f"{file} holds params {sorted(saved.params)}, but a {cls.__name__} with its config has {sorted(specs)}"
            )
        slots = {f"{p}.{k}": shape for p, _, keys, shape in model._state_slots() for k in keys}
        unknown = sorted(set(saved.state) - set(slots))
        if unknown:
            raise ValueError(
                f"{file} holds state {unknown}, but a {cls.__name__} with its config has only {sorted(slots)}"
            )
        like = dtype_name(model.dtype)
        for name, (shape, _) in specs.items():
            check_array(
                saved.params[name], shape, "f", file=file, key=PARAMS_PREFIX + name, what=f"param {name!r}", like=like
            )
        for name, a in saved.state.items():
            check_array(a, slots[name], "f", file=file, key=STATE_PREFIX + name, what=f"state {name!r}", like=like)
        model.params = {name: model._own(saved.params[name]) for name in specs}
        model.device = _device_of(model.params[next(iter(specs))])
        model.set_state(saved.state)
        return model

    def _config_dtype(self) -> str:
        """The dtype's name ('float32'), as saved in ``config()``."""
        return dtype_name(self.dtype)


def load_model(path, *, xp: Any = None, device: Any = None) -> Model:
    """Load any xpnet model saved with ``model.save(path)``, on backend ``xp`` and ``device``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file ``model.save`` wrote.
    xp : module, str or namespace, optional
        The backend for the params (NumPy by default).
    device : device, optional
        The device on ``xp`` (its default by default).

    Returns
    -------
    Model
        A model of the class the file names.
    """
    return Model.load(path, xp=xp, device=device)
