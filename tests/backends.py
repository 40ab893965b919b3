"""The backend ids of the ``xp`` fixture, in the order tests and reports list them.

Kept in a module of its own, with no imports, so that ci/check_backends.py (which reads a JUnit report outside
pytest) and tests/conftest.py share one list.
"""

ALL_BACKENDS = (
    "numpy",
    "array_api_strict",
    "array_api_strict_device1",
    "array_api_strict_no_float64",
    "torch",
    "jax",
    "cupy",
    "torch_cuda",
)
