"""The check every benchmark runs before it times anything: xpnet's arrays against a float64 reference."""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-4  # largest error as a fraction of the reference's largest magnitude


def scaled_errors(got: dict, expected: dict, to_numpy) -> tuple[dict[str, float], list[str]]:
    """Each array's largest error over the reference's largest magnitude, and what is wrong (a shape, or an error
    above TOLERANCE; NaN fails too), for the arrays ``expected`` names."""
    errors, wrong = {}, []
    for name, ref in expected.items():
        value = to_numpy(got[name]).astype(np.float64)
        if value.shape != ref.shape:
            wrong.append(f"{name} has shape {value.shape}, expected {ref.shape}")
            continue
        errors[name] = float(np.max(np.abs(value - ref))) / max(float(np.max(np.abs(ref))), 1e-30)
        if not errors[name] <= TOLERANCE:
            wrong.append(f"{name} is off by {errors[name]:.2e} of its scale (tolerance {TOLERANCE:.0e})")
    return errors, wrong
