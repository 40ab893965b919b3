"""CS231n's layer functions on any Array API backend: ``from xpnet.layers import *`` gives all of them.

Each ``*_forward`` returns ``(out, cache)`` and each ``*_backward`` takes ``(dout, cache)``, as in CS231n.
One file per family, forward right above its backward.

Array arguments hold real numbers. Integer and bool arrays are promoted as NumPy promotes them in CS231n's own code
(``b = np.array([0, 128])`` in the ConvolutionalNetworks notebook): to the dtype of the other, floating, arguments,
or to the device's default float when no argument is floating (float64 for NumPy, torch's default dtype for torch).
The rule is the same on every backend, and it reads only dtypes, never values. Complex arrays are refused.
"""

from . import activation, affine, conv, dropout, loss, norm, pool
from .activation import *  # noqa: F403
from .affine import *  # noqa: F403
from .conv import *  # noqa: F403
from .dropout import *  # noqa: F403
from .loss import *  # noqa: F403
from .norm import *  # noqa: F403
from .pool import *  # noqa: F403

__all__ = [
    *affine.__all__,
    *activation.__all__,
    *norm.__all__,
    *dropout.__all__,
    *conv.__all__,
    *pool.__all__,
    *loss.__all__,
]
