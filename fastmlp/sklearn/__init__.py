"""scikit-learn estimators trained by fastmlp: change one import line.

    from fastmlp.sklearn import MLPClassifier, MLPRegressor

They take scikit-learn 1.9's parameters (plus fastmlp's `dtype` and `device`), validate them
with scikit-learn's own constraints (InvalidParameterError), set the same fitted attributes,
start from the same initial weights for the same random_state, and work in pipelines, grid
searches, clone and pickle. Every minibatch runs in fastmlp's compiled loop, one fit per
call, with the sgd learning-rate schedules (invscaling, adaptive) as fastmlp.schedules
inside it; scikit-learn's per-epoch rules (tol and n_iter_no_change, early stopping) run once
per epoch as a fit callback (epochs.py).

With the rows in a fixed order (shuffle=False) training follows scikit-learn's step for step.
Where the two differ, on purpose:
- Adam adds epsilon to sqrt(v) after the bias correction (as PyTorch), scikit-learn before
  it: steps of weights with tiny gradients differ in the first epochs.
- solver="sgd" keeps the learning rate out of the momentum buffer (as PyTorch), which is the
  same rule as scikit-learn's while the rate is constant, not across an invscaling or
  adaptive change.
- The shuffle draws from fastmlp's own generator (seeded from random_state).
- loss="poisson" is not available (fastmlp has no exponential output layer).
- For multi-output regression loss_ takes the l2 share from the epoch's last weights (the
  loss itself is exact).
- partial_fit is unavailable with solver="lbfgs" on the regressor too (scikit-learn's
  regressor runs a whole L-BFGS fit there).
"""
from .estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
