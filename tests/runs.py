"""Starting one fit's Run by hand (fit/protocols.py), as the fit loop does, for tests that
step a run themselves: X and T are the kernels' arrays (model.as_arrays)."""
from fastmlp.core.sample_weight import check_sample_weight
from fastmlp.fit.plan import FitPlan, Objective, Rows


def make_plan(model, X, T, batch_size, shuffle, epochs, *, weights=None, schedule=None,
              l2_per_sample=None, validation=None, optimizer=None, l2=None, loss=None):
    """The FitPlan of a fit on (X, T), the model's objective and optimizer unless given;
    validation: None, (Xv, Tv) or (Xv, Tv, Wv); weights are checked as the model does."""
    def rows(X, T, W=None):
        return Rows(X, T, None if W is None else check_sample_weight(W, X.shape[0]))
    objective = Objective(model.loss_code if loss is None else loss,
                          model.l2 if l2 is None else l2,
                          model.l2_per_sample if l2_per_sample is None else bool(l2_per_sample))
    return FitPlan(rows(X, T, weights), None if validation is None else rows(*validation),
                   min(batch_size, X.shape[0]), shuffle, epochs, objective,
                   model.optimizer if optimizer is None else optimizer, schedule)


def start(model, X, T, batch_size, shuffle, epochs, **kwargs):
    """model.backend.start(make_plan(...)): the Run at its first segment."""
    return model.backend.start(make_plan(model, X, T, batch_size, shuffle, epochs, **kwargs))


def recorded_runs(monkeypatch, backend_class=None):
    """The runs backend_class.start makes (CpuBackend's by default) from now on in this
    test, in order: what a fit trained with, read through the Run protocol afterwards."""
    if backend_class is None:
        from fastmlp.cpu.backend import CpuBackend as backend_class
    runs = []
    real = backend_class.start

    def start(backend, plan):
        runs.append(real(backend, plan))
        return runs[-1]

    monkeypatch.setattr(backend_class, "start", start)
    return runs
