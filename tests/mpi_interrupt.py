"""Run by tests/test_mpi_interrupt.py as `mpiexec -n 2 python -m tests.mpi_interrupt OUTDIR
ARGV...`: each rank runs `fastmlp ARGV...` (cli.main) and writes what it ended with to
OUTDIR/rank<r>.json: its exit status, the epochs its fit trained, whether the fit was
interrupted, and a digest of its final weights. OUTDIR/ready<r> says the rank has imported
what the command needs, so the test's Ctrl-C lands in the command, not in Python's startup.
"""
import hashlib
import json
import os
import sys

import fastmlp.cli.train  # noqa: F401  (imported before ready: see the docstring)
from fastmlp.cli import main
from fastmlp.cpu import mpi  # noqa: F401
from fastmlp.model import MLP


def run(outdir, argv):
    rank = int(os.environ.get("PMI_RANK", "0"))
    record = {"epochs": None, "interrupted": None, "weights": None}
    fit = MLP.fit

    def recording_fit(model, *args, **kwargs):
        history = fit(model, *args, **kwargs)
        digest = hashlib.sha256()
        for W, b in model.get_weights():
            digest.update(W.tobytes() + b.tobytes())
        record.update(epochs=int(history.epochs), interrupted=bool(history.interrupted),
                      weights=digest.hexdigest())
        return history

    MLP.fit = recording_fit
    open(os.path.join(outdir, f"ready{rank}"), "w").close()
    status = main(argv)
    with open(os.path.join(outdir, f"rank{rank}.json"), "w") as f:
        json.dump({"status": status, **record}, f)
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
