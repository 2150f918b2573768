"""fastmlp: multilayer perceptrons trained by hand-written Numba kernels."""
from . import datasets
from .core import schedules, sample_weight as weights
from .gradcheck import gradcheck
from .fit.history import History
from .model import MLP
from .core.optimizers import LBFGS, SGD, Adam, AdamW
from .fit.loop import StopTraining

__all__ = ["MLP", "SGD", "Adam", "AdamW", "LBFGS", "History", "StopTraining", "gradcheck"]
__version__ = "0.1.0"
