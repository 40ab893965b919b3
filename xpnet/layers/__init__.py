"""CS231n's layer functions on any Array API backend: ``from xpnet.layers import *`` gives all of them.

Each ``*_forward`` returns ``(out, cache)`` and each ``*_backward`` takes ``(dout, cache)``, as in CS231n.
One file per family, forward right above its backward.
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
