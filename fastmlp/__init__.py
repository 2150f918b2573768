"""fastmlp: multilayer perceptrons trained by hand-written Numba kernels."""
from . import datasets, schedules, weights
from .gradcheck import gradcheck
from .history import History
from .model import MLP
from .optimizers import LBFGS, SGD, Adam, AdamW
from .training import StopTraining

__all__ = ["MLP", "SGD", "Adam", "AdamW", "LBFGS", "History", "StopTraining", "gradcheck"]
__version__ = "0.1.0"
