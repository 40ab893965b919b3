"""What a benchmark's header says about the machine: the CPU, and the kernels OpenBLAS runs on it.

OpenBLAS picks its kernels at run time from the CPU it finds, unless ``OPENBLAS_CORETYPE`` names them. Some
machines set it (with ``OPENBLAS_L2_SIZE``) for older OpenBLAS builds that fail on their CPU; NumPy 2.4.6's OpenBLAS
0.3.31 then runs e.g. its Haswell (AVX2) kernels on an AVX-512 CPU, where its own choice (SkylakeX) runs a square
float32 matmul twice as fast. Ratios against torch (whose oneDNN and MKL pick AVX-512 themselves) depend on it, so
the headers print the kernels and any forcing variable.
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform


def cpu_name() -> str:
    """The CPU's model name, with its family and model numbers (Linux), e.g. "AMD EPYC (family 26, model 2)"."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.machine())
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


def openblas_kernels(np) -> str:
    """The kernel family NumPy's OpenBLAS runs (e.g. "Haswell"), or "unknown"; call after NumPy is imported."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)  # the library NumPy already loaded: the same handle
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            corename = getattr(lib, symbol, None)
            if corename is not None:
                corename.restype = ctypes.c_char_p
                forced = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
                return corename().decode() + (f" (forced: {', '.join(forced)})" if forced else "")
    return "unknown"
