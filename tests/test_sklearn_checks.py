"""scikit-learn's own estimator checks over fastmlp.sklearn's two estimators."""
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastmlp.sklearn import MLPClassifier, MLPRegressor

# The one kind of check these estimators are expected to fail, with the reason.
SAMPLE_WEIGHT_REASON = (
    "minibatch solvers (the default adam) see a weighted row once per epoch but a repeated "
    "row several times, in different batches, so weights are not equivalent to repetition; "
    "scikit-learn's own MLPs fail it too unless run with full-batch lbfgs")


def expected_failed_checks(estimator):
    return {"check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_REASON,
            "check_sample_weight_equivalence_on_sparse_data": SAMPLE_WEIGHT_REASON}


# max_iter=100 as scikit-learn's own test suite runs its MLPs.
@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)],
                         expected_failed_checks=expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
