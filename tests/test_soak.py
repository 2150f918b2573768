"""Soak: 10^7 xor steps in four fits of 2.5 million one-batch epochs each. Memory stays flat
from fit to fit, and a fit's History and its peak memory do not grow with its epochs.

Runs in a fresh process so that its peak memory (ru_maxrss) is that of these fits alone.
Marked slow (`-m "not slow"` skips it); CI runs it: 8-20 s on the 2-core development machine.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                 reason="reads resident memory from /proc (Linux)")]

MiB = 2**20
CHUNKS, EPOCHS = 4, 2_500_000      # xor: one batch of 4 rows per epoch, one step each
HISTORY_LIMIT = 16 * MiB           # what a History may hold, whatever its epochs
PEAK_LIMIT = 64 * MiB              # peak memory above the warmed-up process, during fits
GROWTH_LIMIT = 4 * MiB             # resident after the last fit minus the most after any earlier

SCRIPT = """
import json, os, resource
import numpy as np
import fastmlp

PAGE = os.sysconf("SC_PAGE_SIZE")
try:  # glibc keeps freed heap pages resident; trimmed, resident memory is live memory
    import ctypes
    trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):
    trim = None
def resident():
    if trim is not None:
        trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
y = np.array([0, 1, 1, 0])
model = fastmlp.MLP(2, [(2, "relu"), (1, "sigmoid")], optimizer=fastmlp.SGD(lr=0.5), seed=0)
model.fit(X, y, epochs=1000, batch_size=4, progress=False)  # compiled and warmed up
base = resident()
try:  # reset the peak (VmHWM), so that a compile during the warm-up does not count
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
after, history_bytes, epochs = [], [], []
for _ in range({chunks}):
    history = model.fit(X, y, epochs={epochs}, batch_size=4, progress=False)
    history_bytes.append(sum(np.asarray(a).nbytes for a in vars(history).values()
                             if isinstance(a, np.ndarray)))
    epochs.append(history.epochs)
    del history
    after.append(resident())
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) * 1024
print(json.dumps(dict(base=base, after=after, peak=peak, history_bytes=history_bytes,
                      epochs=epochs, weights_finite=bool(all(
                          np.isfinite(w).all() for pair in model.get_weights() for w in pair)))))
"""


@pytest.fixture(scope="module")
def soak():
    """Run the fits once; (measurements, a line that reports them)."""
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", SCRIPT.format(chunks=CHUNKS, epochs=EPOCHS)],
                         cwd=root, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    report = (f"history {[round(b / MiB, 1) for b in result['history_bytes']]} MiB, peak "
              f"+{(result['peak'] - result['base']) / MiB:.0f} MiB, resident after each fit "
              f"{[round((a - result['base']) / MiB, 1) for a in result['after']]} MiB above "
              f"the start")
    return result, report


def test_ten_million_xor_steps_leave_memory_flat(soak):
    result, report = soak
    assert result["weights_finite"], report
    # Flat, not merely bounded by luck: the last fit ends no higher than the highest of the
    # earlier ones (the allocator's free lists make each figure wobble by a few MiB).
    assert result["after"][-1] - max(result["after"][:-1]) <= GROWTH_LIMIT, report


def test_history_and_peak_memory_do_not_grow_with_epochs(soak):
    result, report = soak
    assert max(result["history_bytes"]) <= HISTORY_LIMIT, report
    assert result["peak"] - result["base"] <= PEAK_LIMIT, report
