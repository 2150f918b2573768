"""Full-batch L-BFGS as a Run (fit/protocols.Run): scipy's L-BFGS-B over the flat parameters.

Behind the same loop as the minibatch runs, so progress, callbacks, validation and early
stopping work as there: an epoch is one L-BFGS iteration over every row. scipy's minimize
runs one optimisation from start to end and offers no way to pause it, so it runs in a worker
thread that waits in its per-iteration callback until the loop asks for the next iteration:
the loop and the worker take turns (never both inside the model's buffers), and the
iterates are exactly those of one uninterrupted minimize call. A stop asked by the loop
(early stopping, a callback, Ctrl-C, an error) ends minimize through StopIteration from the
callback, which scipy reports as its result.

The parameters already live in one vector, so scipy's iterate is copied into the backend's
parameter buffer once per evaluation (the only copy), and the loss and gradient come from the
compiled kernels (Backend.loss_rows and Backend.gradient_rows over all rows). After each
iteration the model holds that iterate. A schedule has no rate to change here: fit refuses
one (fit/plan.check_options).
"""
import queue
import threading

import numpy as np

from ..core.status import OK


class LbfgsRun:
    """One L-BFGS fit of `plan` on `backend`, at most min(optimizer.max_iter, plan.epochs)
    iterations; History.lbfgs is scipy's OptimizeResult (message, nit, nfev, status)."""

    def __init__(self, backend, plan):
        self.backend, self.plan = backend, plan
        self.iterations = min(plan.optimizer.max_iter, plan.epochs)
        n_layers = len(backend.spec.layers)
        self.next_segment(plan.first_segment())
        self.result = None
        self.done = False  # minimize has returned
        self.steps = 0  # iterations in this segment
        self.stopping = False
        self.go = threading.Semaphore(0)
        self.reports = queue.Queue()
        self.worker = None
        self.n_layers = n_layers

    def next_segment(self, epochs):
        self.epoch_loss = np.zeros(epochs)
        self.epoch_grad_norm = np.zeros((epochs, len(self.backend.spec.layers)))
        self.epoch_lr = np.full(epochs, np.nan)  # no learning rate
        self.steps = 0

    # -- the worker ------------------------------------------------------------------------
    def _minimize(self):
        from scipy.optimize import minimize
        backend, plan = self.backend, self.plan
        rows, objective = plan.train, plan.objective
        spec = backend.spec
        last = {}

        def loss_and_gradient(p):
            backend.set_params(p)  # scipy's float64 iterate into the model's buffer
            value = backend.loss_rows(rows.X, rows.T, objective, rows.weights)
            grad = backend.gradient_rows(rows.X, rows.T, objective,
                                         rows.weights).astype(np.float64)
            last.update(p=p.copy(), value=value, grad=grad)
            return value, grad

        def iteration_end(p):
            if np.array_equal(p, last.get("p")):  # scipy evaluated this iterate last
                value, grad = last["value"], last["grad"]
            else:
                value, grad = loss_and_gradient(p)
            norms = [np.linalg.norm(grad[spec.weight_slice(l)])
                     for l in range(self.n_layers)]
            self.reports.put(("iteration", value, norms))
            self.go.acquire()  # the loop's turn until it asks for the next iteration
            if self.stopping:
                raise StopIteration

        try:
            self.go.acquire()
            if self.stopping:
                self.reports.put(("done", None, None))
                return
            result = minimize(loss_and_gradient, backend.get_params().astype(np.float64),
                              method="L-BFGS-B", jac=True, callback=iteration_end,
                              # gtol alone, as scikit-learn's lbfgs solver: with ftol too it
                              # stops far earlier on flat stretches
                              options={"maxiter": self.iterations,
                                       "maxfun": plan.optimizer.max_fun,
                                       "gtol": plan.optimizer.tol})
            backend.set_params(result.x)
            self.result = result
            self.reports.put(("done", None, None))
        except BaseException as exc:  # handed to the loop's thread by train_steps
            self.reports.put(("error", exc, None))

    def _next(self):
        """Let the worker run to its next report; (kind, value, norms)."""
        if self.worker is None:
            self.worker = threading.Thread(target=self._minimize, daemon=True,
                                           name="fastmlp-lbfgs")
            self.worker.start()
        self.go.release()
        report = self.reports.get()
        if report[0] == "error":
            self.done = True
            raise report[1]
        if report[0] == "done":
            self.done = True
        return report

    # -- Run ---------------------------------------------------------------------------------
    def train_steps(self, n_steps):
        """Up to n_steps L-BFGS iterations: (OK, iterations done); fewer once minimize has
        stopped (converged, or max_iter, max_fun reached). 0 does nothing: the kernels
        compile at the first evaluation."""
        ran = 0
        while ran < n_steps and not self.done:
            kind, value, norms = self._next()
            if kind != "iteration":
                break
            self.epoch_loss[self.steps] = value * self.plan.n  # a sum, as the minibatch runs'
            self.epoch_grad_norm[self.steps] = norms
            self.steps += 1
            ran += 1
        return OK, ran

    def kernels_ready(self):
        return True  # nothing compiles before the first evaluation, timed in its iteration

    def cursor(self):
        return self.steps, 0

    def validation_loss(self):
        v = self.plan.validation
        return self.backend.loss_rows(v.X, v.T, self.plan.objective, v.weights)

    def restore_if_overflowed(self):
        return False  # train_steps never reports a failed step

    def current_lr(self):
        return None

    def agree_to_stop(self, stop):
        return bool(stop)

    def finished(self):
        return self.done

    def annotate(self, history):
        history.lbfgs = self.result  # scipy's OptimizeResult: message, nit, nfev

    def path(self):
        return "lbfgs"

    def launches(self):
        return self.steps

    def close(self):
        """Stop minimize if it is still waiting for the loop, and wait for it to return."""
        if self.worker is not None and not self.done:
            self.stopping = True
            self._next()
        if self.worker is not None:
            self.worker.join()
