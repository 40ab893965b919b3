"""xpnet: the CS231n assignment-2 neural-network toolkit on any Array API backend.

The same layer code runs on NumPy arrays, CuPy arrays on a CUDA GPU, torch tensors and array_api_strict arrays:
every function takes its array namespace from its inputs.
"""

from ._backend import asarray, backend_name, get_namespace, namespace, to_numpy

__version__ = "0.1.0"

__all__ = ["asarray", "backend_name", "get_namespace", "namespace", "to_numpy", "__version__"]
