"""The data sets' machinery, behind the CS231n-named face :mod:`xpnet.data_utils` (import from there).

One job per module:

- ``_cifar10``: the CIFAR-10 python release's names and reading its batch files;
- ``_safe_pickle``: the restricted unpickler those batches are read with (builds only what the format holds);
- ``_cifar10_source``: where CIFAR-10 is looked for, and downloading it there;
- ``_download``: a verified, atomic, locked download of a ``.tar.gz`` into a folder, built from
  ``_fetch`` (streaming a URL, MD5-checked) and ``_untar`` (unpacking member by member after checking every one);
- ``_splits``: CS231n's data dict (split, cast, mean-subtracted) and ``get_CIFAR10_data``;
- ``_digits``: the small digits set shipped here as ``digits.npz``;
- ``_cli``: ``python -m xpnet.data_utils download-cifar10 [DIR]``.

Nothing here imports an array library but NumPy: data sets are host arrays, which the Solver moves to the model's
backend once.
"""

__all__: list[str] = []
