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


def test_epochs_added_one_at_a_time_stay_in_few_chunks():
    """A fit with validation rows or callbacks adds one epoch a call: its chunks are joined
    as they come (a callback reads the whole History every epoch, and counting the entries
    went over every chunk: 15 s of bookkeeping for 5,000 epochs), and nothing is lost."""
    from fastmlp.fit.epochlog import MAX_CHUNKS
    log = EpochLog(n_layers=1)
    values = np.arange(1000, dtype=np.float64)
    for v in values:
        log.add(loss=[v], grad_norms=[[v]], seconds=[v], lr=[v], val_loss=[v])
        assert all(len(chunks) <= MAX_CHUNKS + 1 for chunks in log.stored.values())
    for name in ("loss", "seconds", "lr", "val_loss"):
        np.testing.assert_array_equal(log.series(name), values)
    np.testing.assert_array_equal(log.series("grad_norms")[:, 0], values)
