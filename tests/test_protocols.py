"""The two lifetimes as contracts (fit/protocols.py): every backend and run has every member
of its protocol, the loop never probes, nothing outside the twins reads their insides, and
L-BFGS is a run behind the same loop."""
import ast
import inspect
import os
import re
from typing import Generic, Protocol

import numpy as np
import pytest

import fastmlp
from fastmlp.core.optimizers import LBFGS
from fastmlp.cpu.backend import CpuBackend
from fastmlp.cpu.run import CpuRun
from fastmlp.fit import protocols
from fastmlp.fit.lbfgs import LbfgsRun
from fastmlp.fit.plan import FitPlan, Objective, plan_for

PACKAGE = os.path.dirname(os.path.abspath(fastmlp.__file__))
X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
Y = np.array([1, 1, 0, 0])


def protocol_members(protocol):
    """The names a Protocol declares, itself or through the protocols it extends: their
    annotated attributes and their methods."""
    names = set()
    for base in protocol.__mro__:
        if base in (object, Protocol, Generic) or not base.__dict__.get("_is_protocol"):
            continue
        names.update(base.__dict__.get("__annotations__", {}))
        names.update(name for name, value in vars(base).items()
                     if inspect.isfunction(value) and not name.startswith("_"))
    return names


def missing(obj, protocol):
    """Members of `protocol` that obj lacks, or has as a non-method where one is declared."""
    out = []
    methods = {name for base in protocol.__mro__ for name, value in vars(base).items()
               if inspect.isfunction(value)}
    for name in sorted(protocol_members(protocol)):
        if not hasattr(obj, name):
            out.append(name)
        elif name in methods and not callable(getattr(obj, name)):
            out.append(f"{name} (not callable)")
    return out


def test_the_protocols_declare_what_the_loop_and_the_model_use():
    assert {"train_steps", "cursor", "epoch_loss", "epoch_grad_norm", "epoch_lr",
            "validation_loss", "restore_if_overflowed", "current_lr", "kernels_ready",
            "agree_to_stop", "next_segment", "finished", "close"} <= \
        protocol_members(protocols.Run)
    assert {"device", "spec", "dtype", "get_state", "set_state", "get_params", "set_params",
            "forward_rows", "loss_rows", "gradient_rows", "start"} <= \
        protocol_members(protocols.Backend)


def test_a_member_added_to_a_protocol_is_missed_by_a_class_without_it():
    class Partial(protocols.Run, Protocol):
        def brand_new(self):
            """A member nobody implements."""

    run = fastmlp.MLP(2, [(2, "tanh"), (1, "sigmoid")], seed=0)
    run = run.backend.start(plan_for(run, X, Y, epochs=1))
    assert missing(run, Partial) == ["brand_new"]


def cpu_pair(optimizer=None, **plan_options):
    model = fastmlp.MLP(2, [(3, "tanh"), (1, "sigmoid")], seed=0, optimizer=optimizer)
    plan = plan_for(model, X, Y, epochs=2, batch_size=2, validation_data=(X, Y),
                    **plan_options)
    return model, plan


def test_the_cpu_backend_and_run_have_every_member():
    model, plan = cpu_pair()
    assert isinstance(model.backend, CpuBackend)
    assert missing(model.backend, protocols.Backend) == []
    run = model.backend.start(plan)
    assert isinstance(run, CpuRun)
    assert missing(run, protocols.Run) == []
    run.close()


def test_the_lbfgs_run_has_every_member():
    model, plan = cpu_pair(optimizer=LBFGS(max_iter=5))
    run = LbfgsRun(model.backend, plan)
    assert missing(run, protocols.Run) == []
    run.close()


def test_the_mpi_backend_and_run_have_every_member():
    MPI = pytest.importorskip("mpi4py.MPI")
    from fastmlp.cpu.mpi import MpiBackend, MpiRun
    model, plan = cpu_pair()
    backend = MpiBackend(model.backend, MPI.COMM_SELF)
    assert missing(backend, protocols.Backend) == []
    plan = plan_for(model, X, Y, epochs=2, batch_size=2, validation_data=(X, Y))
    run = backend.start(plan)
    assert isinstance(run, MpiRun)
    assert missing(run, protocols.Run) == []
    run.close()


def test_the_cuda_backend_and_run_have_every_member():
    from fastmlp.cuda.run import CudaRun  # in numba's simulator without a GPU (conftest)
    model = fastmlp.MLP(2, [(3, "tanh"), (1, "sigmoid")], seed=0, device="cuda")
    assert missing(model.backend, protocols.Backend) == []
    run = model.backend.start(plan_for(model, X, Y, epochs=2, batch_size=2,
                                       validation_data=(X, Y)))
    assert isinstance(run, CudaRun)
    assert missing(run, protocols.Run) == []
    run.close()


# -- no probing, no reaching in ---------------------------------------------------------------
def modules_under(*parts):
    root = os.path.join(PACKAGE, *parts)
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_the_fit_package_never_calls_getattr_or_hasattr():
    offenders = []
    for path in modules_under("fit"):
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("getattr", "hasattr"):
                offenders.append(f"{os.path.relpath(path, PACKAGE)}:{node.lineno}")
    assert not offenders, offenders


#: A backend's or run's buffers and bookkeeping, which only the twins themselves read.
INSIDES = re.compile(r"\.(ws|fit_state|dws|workspace|trainer)\b")
#: An underscored member read through something named as a backend or a run.
PRIVATE = re.compile(r"\b(\w*backend|\w*run|inner|trainer)\._\w+", re.IGNORECASE)


def test_no_module_outside_the_twins_reads_a_backends_or_runs_insides():
    twins = (os.path.join(PACKAGE, "cpu") + os.sep, os.path.join(PACKAGE, "cuda") + os.sep)
    offenders = []
    for path in modules_under():
        if path.startswith(twins):
            continue
        for number, line in enumerate(open(path), 1):
            code = line.split("#")[0]
            if code.lstrip().startswith(("from ", "import ")):
                continue  # a module's name (core.workspace) is not a member
            if INSIDES.search(code) or PRIVATE.search(code):
                offenders.append(f"{os.path.relpath(path, PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_would_see_a_reach_inside():
    assert INSIDES.search("params = model.backend.ws.params")
    assert INSIDES.search("run.fit_state.cursor")
    assert PRIVATE.search("model.backend._rows(3)")
    assert not INSIDES.search("model.backend.get_state()")


# -- the plan ---------------------------------------------------------------------------------
def test_the_plan_is_frozen_and_checked_once():
    model, plan = cpu_pair(sample_weight=np.array([1.0, 2.0, 0.5, 1.0]))
    assert isinstance(plan, FitPlan)
    with pytest.raises(Exception):
        plan.epochs = 3
    assert plan.train.weights.dtype == np.float64
    assert plan.objective == Objective(model.loss_code, model.l2, False)
    assert plan.batch_size == 2 and plan.steps_per_epoch == 2


def test_loss_rows_takes_the_objective():
    model = fastmlp.MLP(2, [(3, "tanh"), (1, "sigmoid")], seed=0, l2=0.1, dtype="float64")
    Xa, T = model.as_arrays(X, Y)
    plain = model.backend.loss_rows(Xa, T, Objective(model.loss_code))
    assert model.loss(X, Y) == model.backend.loss_rows(Xa, T, model.objective) > plain


# -- L-BFGS behind the loop -------------------------------------------------------------------
def lbfgs_model(max_iter=200):
    return fastmlp.MLP(2, [(4, "tanh"), (1, "sigmoid")], seed=0, dtype="float64",
                       optimizer=LBFGS(max_iter=max_iter))


def test_lbfgs_without_epochs_runs_up_to_max_iter():
    """Issue 23 item 12: epochs defaulted to 1, so L-BFGS made one iteration."""
    model = lbfgs_model(max_iter=200)
    h = model.fit(X, Y, progress=False)
    assert h.epochs > 1 and h.lbfgs.nit == h.epochs <= 200
    assert h.lbfgs.status == 0  # it converged (gtol), as one uninterrupted minimize
    capped = lbfgs_model(max_iter=3).fit(X, Y, progress=False)
    assert capped.epochs == 3 == capped.lbfgs.nit


def test_lbfgs_is_the_same_minimize_in_chunks_of_any_size():
    one = lbfgs_model().fit(X, Y, epochs=30, progress=False)
    model = lbfgs_model()
    stepped = model.fit(X, Y, epochs=30, progress=False, callbacks=[lambda m, h: None])
    np.testing.assert_array_equal(one.loss, stepped.loss)
    assert one.lbfgs.nit == stepped.lbfgs.nit


def test_lbfgs_honours_validation_callbacks_and_early_stopping():
    model = lbfgs_model()
    h = model.fit(X, Y, epochs=50, progress=False, validation_data=(X, Y),
                  callbacks=[lambda m, h: h.epochs < 4])
    assert h.epochs == 4 and len(h.val_loss) == 4 and len(h.val_accuracy) == 4
    # validating on the training rows: each epoch's validation loss is its iterate's loss
    np.testing.assert_allclose(h.val_loss, h.loss, rtol=1e-12)
    assert h.lbfgs.status == 99  # stopped by the loop, through its callback
    # the model holds the last iterate: its loss is the last epoch's
    assert model.loss(X, Y) == pytest.approx(h.loss[-1], rel=1e-12)
    stopped = lbfgs_model().fit(X, Y, epochs=50, progress=False, early_stopping=True,
                                patience=1, min_delta=10.0)
    assert stopped.stopped_early and stopped.epochs == 2 and stopped.best_epoch == 0


def test_lbfgs_refuses_a_schedule():
    with pytest.raises(ValueError, match="LBFGS has no learning rate"):
        lbfgs_model().fit(X, Y, schedule=fastmlp.schedules.Cosine(total_steps=5),
                          progress=False)
