"""scikit-learn estimators trained by fastmlp: change one import line.

    from fastmlp.sklearn import MLPClassifier, MLPRegressor

They take scikit-learn 1.9's parameters (plus fastmlp's `dtype` and `device`), validate them
with scikit-learn's own constraints (InvalidParameterError), set the same fitted attributes,
start from the same initial weights for the same random_state, and work in pipelines, grid
searches, clone and pickle. Every minibatch runs in fastmlp's compiled loop; scikit-learn's
per-epoch rules (tol and n_iter_no_change, early stopping, the sgd learning-rate schedules)
run once per epoch (epochs.py).
"""
from .estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
