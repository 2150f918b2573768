"""scikit-learn's own estimator checks over fastmlp.sklearn's two estimators: every check
passes, none is listed as an expected failure. (The sample-weight equivalence checks, which
minibatch solvers fail in general because a weighted row is seen once an epoch and a repeated
row several times in different batches, run on fewer than 200 rows, which batch_size="auto"
trains as one batch; tests/test_sklearn_training.py checks the full-batch equivalence
directly.)"""
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastmlp.sklearn import MLPClassifier, MLPRegressor


# max_iter=100 as scikit-learn's own test suite runs its MLPs.
@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
