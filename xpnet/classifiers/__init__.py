"""CS231n's classifiers on any Array API backend, with portable save/load.

``FullyConnectedNet``, ``ThreeLayerConvNet`` and the 2019 edition's ``TwoLayerNet`` keep CS231n's constructor
arguments, ``params`` dict and ``loss(X, y=None)`` contract, and take ``xp=`` / ``device=`` to choose where their
params live. ``model.save(path)``
writes one ``.npz``; :func:`load_model` reads it back on any backend.
"""

from ._base import load_model
from .cnn import ThreeLayerConvNet
from .fc_net import FullyConnectedNet, TwoLayerNet

__all__ = ["FullyConnectedNet", "ThreeLayerConvNet", "TwoLayerNet", "load_model"]
