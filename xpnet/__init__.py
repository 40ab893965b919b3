"""xpnet: the CS231n assignment-2 neural-network toolkit on any Array API backend.

The same layer code runs on NumPy arrays, CuPy arrays on a CUDA GPU, torch tensors and array_api_strict arrays:
every function takes its array namespace from its inputs.
"""

from ._backend import asarray, backend_name, load_namespace, namespace, to_numpy

# Deprecated (warns): load_namespace is its name now. Importable, but left out of __all__ and the docs.
from ._backend import get_namespace as get_namespace

__version__ = "0.1.0"

__all__ = ["asarray", "backend_name", "load_namespace", "namespace", "to_numpy", "__version__"]
