"""EpochLog against a plain reference: the whole per-epoch record merged at the end."""
import numpy as np
import pytest

from fastmlp.fit.epochlog import EpochLog


def reference(per_epoch, stride, rule):
    """Blocks of `stride` epochs (the last one partial) merged by rule."""
    blocks = [per_epoch[i:i + stride] for i in range(0, len(per_epoch), stride)]
    merge = {"mean": lambda b: b.mean(0), "sum": lambda b: b.sum(0), "last": lambda b: b[-1]}
    return np.array([merge[rule](b) for b in blocks])


@pytest.mark.parametrize("max_entries", [4, 7, 8, 1000])
@pytest.mark.parametrize("seed", range(4))
def test_the_log_holds_the_merged_record_of_every_epoch(max_entries, seed):
    rng = np.random.default_rng(seed)
    log = EpochLog(n_layers=3, max_entries=max_entries)
    record = {"loss": [], "grad_norms": [], "seconds": [], "lr": []}
    for k in rng.integers(1, 40, size=12):
        chunk = {"loss": rng.random(k), "grad_norms": rng.random((k, 3)),
                 "seconds": rng.random(k), "lr": rng.random(k)}
        log.add(**chunk)
        for name in chunk:
            record[name].append(chunk[name].copy())
            chunk[name][...] = -1  # the caller reuses its buffers: the log kept copies
    epochs = sum(len(r) for r in record["loss"])
    assert log.epochs == epochs
    assert len(log.series("loss")) <= max_entries + 1  # + the partial last entry
    for name, rule in [("loss", "mean"), ("grad_norms", "mean"), ("seconds", "sum"),
                       ("lr", "last")]:
        expected = reference(np.concatenate(record[name]), log.stride, rule)
        np.testing.assert_allclose(log.series(name), expected, rtol=1e-12, err_msg=name)
    assert log.last("loss") == record["loss"][-1][-1]
