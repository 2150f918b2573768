"""fastmlp: multilayer perceptrons trained by hand-written Numba kernels."""
from .gradcheck import gradcheck
from .history import History
from .model import MLP
from .optimizers import SGD, Adam, AdamW

__all__ = ["MLP", "SGD", "Adam", "AdamW", "History", "gradcheck"]
__version__ = "0.1.0"
