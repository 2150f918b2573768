"""scikit-learn's end-of-epoch bookkeeping for the minibatch solvers, run as a fastmlp fit
callback: once per epoch in Python, never per batch.

It mirrors BaseMultilayerPerceptron._fit_stochastic after each epoch: n_iter_, t_, loss_ and
loss_curve_, the `Iteration N, loss = ...` line, the tol / n_iter_no_change counter on the
training loss (or on the validation score with early stopping, keeping the best weights),
and the learning-rate rules of solver="sgd" (invscaling: learning_rate_init / (t_ + 1) **
power_t from the next epoch; adaptive: divide by 5 instead of stopping, until it is 1e-6).
"""
import math

import numpy as np


class EpochRule:
    """The callback of one fit: cb(model, history) -> False to stop, as MLP.fit takes it."""

    def __init__(self, estimator, n_samples, batch_size, validation, weight_sum):
        self.estimator = estimator
        self.n_samples = n_samples
        self.batches = math.ceil(n_samples / batch_size)
        self.weight_sum = weight_sum
        self.X_val, self.y_val, self.sample_weight_val = validation
        self.schedule = estimator.learning_rate if estimator.solver == "sgd" else "constant"
        # A continued partial_fit keeps the rate its optimizer had, as scikit-learn's does.
        self.lr = estimator.model_.optimizer.lr
        self.stopped = False
        self.interrupted = False

    @property
    def changes_lr(self):
        """True when the learning rate may change between epochs (sgd with invscaling or
        adaptive): the estimator then runs one fit per epoch with the rate the rule set."""
        return self.schedule != "constant"

    def note(self, history):
        """Take the History of a fit call that has returned."""
        self.interrupted = self.interrupted or history.interrupted

    def __call__(self, model, history):
        est = self.estimator
        loss = est._sklearn_loss(float(history.loss[-1]), self.batches, self.weight_sum)
        est.n_iter_ += 1
        est.loss_ = loss
        est.t_ += self.n_samples
        est.loss_curve_.append(loss)
        if est.verbose:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, loss))
        self._update_no_improvement_count(model)
        if self.schedule == "invscaling":
            self.lr = float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if est.early_stopping else "Training loss"
            msg = (f"{what} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
            if self.schedule == "adaptive" and self.lr > 1e-6:
                self.lr /= 5.0
                est._no_improvement_count = 0
                if est.verbose:
                    print(msg + " Setting learning rate to %f" % self.lr)
                return None
            if est.verbose:
                tail = " Learning rate too small." if self.schedule == "adaptive" else ""
                print(msg + tail + " Stopping.")
            self.stopped = True
            return False
        return None

    def _update_no_improvement_count(self, model):
        est = self.estimator
        if est.early_stopping:
            # the validation score (can be NaN) decides; the best weights are kept
            score = est._score(self.X_val, self.y_val, sample_weight=self.sample_weight_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_weights = model.get_weights()
        else:
            if est.loss_curve_[-1] > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if est.loss_curve_[-1] < est.best_loss_:
                est.best_loss_ = est.loss_curve_[-1]


def weight_sum(n_samples, sample_weight):
    """The weight of an epoch's rows: n without sample weights."""
    return float(n_samples) if sample_weight is None else float(np.sum(sample_weight))
