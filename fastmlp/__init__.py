"""fastmlp: multilayer perceptrons trained by hand-written Numba kernels."""
from . import datasets
from .core import schedules
from .core.optimizers import LBFGS, SGD, Adam, AdamW
from .core.sample_weight import class_weights_to_sample_weights
from .fit.history import History
from .fit.loop import StopTraining
from .gradcheck import gradcheck
from .model import MLP

__all__ = ["MLP", "SGD", "Adam", "AdamW", "LBFGS", "History", "StopTraining", "gradcheck",
           "class_weights_to_sample_weights", "datasets", "schedules"]
__version__ = "0.1.0"
