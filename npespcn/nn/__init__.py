"""Objects that own parameters (like PyTorch's ``nn``): layers, the ESPCN model, optimizers, and the
shipped models.

==================  ==============================================================================
file                concept
==================  ==============================================================================
``layers.py``       Conv2d, Activation, PReLU, PixelShuffle: thin objects over :mod:`npespcn.functional`
``reparam.py``      RepConv2d: a convolution trained as parallel branches, folded into one
``model.py``        ESPCN (a list of layers), ``load_model`` (any model file), ``check_scale``
``optim.py``        SGD, Adam; EMA (moving average of the weights); StepLR, CosineLR schedules
``pretrained.py``   the shipped weights, and ``resolve_model`` (a name, a path or a model -> a model)
==================  ==============================================================================
"""
from .layers import Activation, Conv2d, Layer, PixelShuffle, PReLU
from .model import ESPCN, PAPER_LAYERS, SEVEN_LAYERS, check_scale, load_model
from .optim import EMA, SGD, Adam, CosineLR, StepLR
from .pretrained import resolve_model
from .reparam import RepConv2d

__all__ = ["Layer", "Conv2d", "RepConv2d", "Activation", "PReLU", "PixelShuffle", "ESPCN", "PAPER_LAYERS",
           "SEVEN_LAYERS", "check_scale", "load_model", "SGD", "Adam", "EMA", "StepLR", "CosineLR", "resolve_model"]
