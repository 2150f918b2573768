"""fastmlp: multilayer perceptrons trained by hand-written Numba kernels."""
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


def __getattr__(name):
    """fastmlp.datasets loads when first used (PEP 562): its download machinery costs an
    import that a fit on the user's own arrays never needs."""
    if name == "datasets":
        import importlib
        return importlib.import_module(".datasets", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
