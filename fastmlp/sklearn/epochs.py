"""scikit-learn's end-of-epoch bookkeeping for the minibatch solvers, run as a fastmlp fit
callback: once per epoch in Python, never per batch.

It mirrors BaseMultilayerPerceptron._fit_stochastic after each epoch: n_iter_, t_, loss_ and
loss_curve_, the `Iteration N, loss = ...` line, and the tol / n_iter_no_change rule on the
training loss (or on the validation score with early stopping, keeping the best weights).
The rule is a schedules.ReduceOnPlateau that keeps its own record: for solver="sgd" with
learning_rate="adaptive" it is also the fit's schedule (divide the rate by 5 instead of
stopping, until it is 1e-6); otherwise its min_lr is inf, so it stops at the first plateau.
learning_rate="invscaling" is schedules.InverseScaling(power_t, "samples"), computed inside
the compiled loop. Both rules live on the estimator across fits, as scikit-learn's counters
and optimizer do.
"""
import math

import numpy as np

from ..core.schedules import InverseScaling, ReduceOnPlateau


def epoch_rules(estimator, continuing):
    """(stopping rule, learning-rate schedule or None) for the next fit, kept from the last
    fit where they are the same rules (a warm start or partial_fit continues the record);
    without `continuing` the model has a new optimizer, so the rate starts over from
    learning_rate_init while the record goes on, as scikit-learn's. A warm start that
    changes tol, n_iter_no_change or the schedule starts the record over."""
    sgd = estimator.solver == "sgd"
    adaptive = sgd and estimator.learning_rate == "adaptive"
    stopping = ReduceOnPlateau(0.2, estimator.n_iter_no_change, estimator.tol,
                               1e-6 if adaptive else math.inf, monitor="callback")
    schedule = InverseScaling(estimator.power_t, "samples") \
        if sgd and estimator.learning_rate == "invscaling" else None
    previous_stopping = getattr(estimator, "_stopping", None)
    if stopping == previous_stopping:
        stopping = previous_stopping
    if adaptive:
        schedule = stopping
    elif schedule is not None and schedule == getattr(estimator, "_lr_schedule", None):
        schedule = estimator._lr_schedule
    if schedule is not None and not continuing:
        schedule.restart_rate()
    return stopping, schedule


class EpochRule:
    """The callback of one fit: cb(model, history) -> False to stop, as MLP.fit takes it."""

    def __init__(self, estimator, n_samples, batch_size, validation, weight_sum):
        self.estimator = estimator
        self.n_samples = n_samples
        self.batches = math.ceil(n_samples / batch_size)
        self.weight_sum = weight_sum
        self.X_val, self.y_val, self.sample_weight_val = validation
        self.stopped = False
        self.interrupted = False

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
        rule = est._stopping
        best, rate = rule.best, rule.rate
        if est.early_stopping:
            # the validation score (can be NaN) decides; the best weights are kept
            score = est._score(self.X_val, self.y_val, sample_weight=self.sample_weight_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
            stop = rule.epoch_end(-score)  # the rule watches a value to lower
            if rule.best < best:
                est.best_validation_score_ = score
                est._best_weights = model.get_weights()
        else:
            stop = rule.epoch_end(loss)
            est.best_loss_ = rule.best
        if not stop and rule.rate == rate:
            return None
        what = "Validation score" if est.early_stopping else "Training loss"
        msg = (f"{what} did not improve more than tol={est.tol:f} for "
               f"{est.n_iter_no_change} consecutive epochs.")
        if not stop:  # adaptive: the rule divided the rate by 5
            if est.verbose:
                print(msg + " Setting learning rate to %f" % rule.rate)
            return None
        if est.verbose:
            tail = " Learning rate too small." if rule is est._lr_schedule else ""
            print(msg + tail + " Stopping.")
        self.stopped = True
        return False


def weight_sum(n_samples, sample_weight):
    """The weight of an epoch's rows: n without sample weights."""
    return float(n_samples) if sample_weight is None else float(np.sum(sample_weight))
