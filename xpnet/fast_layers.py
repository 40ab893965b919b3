"""CS231n's ``fast_layers`` module: the fast convolution and max pooling, under every name CS231n used.

CS231n's version needed a compiled Cython extension (``im2col_cython``) and offered several implementations;
here one portable im2col convolution and one pooling (a reshape path when windows tile the input, a windowed path
otherwise) serve all of the names, so notebooks run unchanged on every backend.
"""

from .layers.conv import conv_backward_fast, conv_forward_fast
from .layers.pool import max_pool_backward_fast, max_pool_forward_fast

__all__ = [
    "conv_forward_fast",
    "conv_backward_fast",
    "max_pool_forward_fast",
    "max_pool_backward_fast",
    "conv_forward_im2col",
    "conv_backward_im2col",
    "conv_forward_strides",
    "conv_backward_strides",
    "max_pool_forward_reshape",
    "max_pool_backward_reshape",
    "max_pool_forward_im2col",
    "max_pool_backward_im2col",
]

conv_forward_im2col = conv_forward_strides = conv_forward_fast
conv_backward_im2col = conv_backward_strides = conv_backward_fast
max_pool_forward_reshape = max_pool_forward_im2col = max_pool_forward_fast
max_pool_backward_reshape = max_pool_backward_im2col = max_pool_backward_fast
