"""`fastmlp bench`: one table, JSON, workload selection; tiny timings, never asserted on."""
import json
import os
import re

import numpy as np
import pytest

from fastmlp.bench import fashion as bench_fashion, inference as bench_inference, run as bench
from fastmlp.cli import main


def test_bench_table_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--workload", "xor", "--workload", "x2", "--seconds", "0.01",
                 "--repeats", "1", "--no-peers", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sgemm roofline" in out and "xor" in out and "x2" in out and "mnist" not in out
    data = json.loads(path.read_text())
    assert set(data["workloads"]) == {"xor", "x2"}
    row = data["workloads"]["x2"]["fastmlp"]
    assert row["steps_per_s"] > 0
    assert row["samples_per_s"] == pytest.approx(100 * row["steps_per_s"])
    assert data["roofline_sgemm_gflops"] > 0 and data["fma_peak_gflops"] > 0
    assert data["isolated"] is True  # each figure from a fresh process by default
    from fastmlp.core.cores import cores
    for key in ("cores", "cores_end"):  # the host's steadiness, at the start and the end
        if cores() >= 2:
            assert data[key]["round_spread"] >= 1 and data[key]["core_ratio"] >= 1
            assert "between cores at once" in out
        else:
            assert data[key] is None


def test_bench_in_one_process_on_request(tmp_path):
    path = tmp_path / "bench.json"
    assert main(["bench", "--workload", "xor", "--seconds", "0.01", "--repeats", "1",
                 "--no-peers", "--same-process", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["isolated"] is False and data["workloads"]["xor"]["fastmlp"]["steps_per_s"] > 0


@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_peers_are_timed_with_a_ratio(peer):
    pytest.importorskip({"torch": "torch", "jax": "optax"}[peer],
                        reason=f"{peer} is an optional peer: pip install '.[peers]'")
    results = bench.run_bench(["xor"], seconds=0.01, repeats=1, peers=(peer,))
    row = results["workloads"]["xor"]
    assert row[peer]["steps_per_s"] > 0
    assert row[peer]["fastmlp_ratio"] == pytest.approx(
        row["fastmlp"]["steps_per_s"] / row[peer]["steps_per_s"])


def test_bench_on_cuda_in_the_simulator(capsys):
    assert main(["bench", "--device", "cuda", "--workload", "xor", "--seconds", "0.01",
                 "--repeats", "1", "--no-peers"]) == 0
    assert "fastmlp on cuda" in capsys.readouterr().out


def test_bad_workload_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--workload", "mnist-huge"])
    assert info.value.code == 2


def write_idx(path, array):
    """A gzipped IDX file of unsigned bytes, as Fashion-MNIST ships."""
    import gzip
    import struct
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion(tmp_path):
    """Fashion-MNIST's four files with 256 training and 64 test images of two classes that a
    linear model separates (bright left half or bright right half)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 256), ("t10k", 64)):
        labels = rng.integers(0, 2, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, label in enumerate(labels):
            images[i, :, 14 * label:14 * label + 14] += 190
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def test_fashion_reads_idx_files(tiny_fashion):
    X, y = bench_fashion.load_fashion("test", str(tiny_fashion))
    assert X.shape == (64, 784) and X.dtype == np.float32 and 0 <= X.min() and X.max() <= 1
    assert y.shape == (64,) and set(np.unique(y)) <= {0, 1}


def test_fashion_row_trains_and_scores(tiny_fashion):
    row = bench_fashion.fashion_row(("sklearn",), repeats=1, directory=str(tiny_fashion),
                                    epochs=2)
    assert set(row) == {"fastmlp", "sklearn"}
    for figures in row.values():
        assert figures["samples_per_s"] > 0
        assert figures["accuracy"] > 0.9  # the two halves are easy to tell apart


@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_fashion_peers_train_and_score(tiny_fashion, peer):
    pytest.importorskip({"torch": "torch", "jax": "optax"}[peer],
                        reason=f"{peer} is an optional peer: pip install '.[peers]'")
    row = bench_fashion.fashion_row((peer,), repeats=1, directory=str(tiny_fashion), epochs=2)
    assert row[peer]["accuracy"] > 0.9 and row[peer]["samples_per_s"] > 0


def test_fashion_is_skipped_with_a_message_without_its_files(tmp_path):
    messages = []
    assert bench_fashion.fashion_row((), 1, directory=str(tmp_path), log=messages.append) is None
    assert "fashion skipped" in messages[0] and "dataset-fashion-mnist" in messages[0]


@pytest.mark.parametrize("peer, isolate", [("onnxruntime", False), ("torch", False),
                                           ("onnxruntime", True)])
def test_inference_rows_agree_and_are_timed(peer, isolate):
    pytest.importorskip({"onnxruntime": "onnx", "torch": "torch"}[peer],
                        reason=f"{peer} is an optional peer: pip install '.[peers]'")
    pytest.importorskip(peer)
    from fastmlp.bench.isolated import isolated_forward
    rows = bench_inference.inference_rows(["mnist-small", "xor"], (peer,), seconds=0.01,
                                          repeats=1, rows=300,
                                          timed=isolated_forward if isolate else None)
    assert set(rows) == {"mnist-small"}  # xor has no inference row
    row = rows["mnist-small"]
    assert row["fastmlp"]["rows_per_s"] > 0
    assert row[peer]["fastmlp_ratio"] == pytest.approx(
        row["fastmlp"]["rows_per_s"] / row[peer]["rows_per_s"])


def test_an_isolated_forward_that_disagrees_posts_no_figure(monkeypatch):
    pytest.importorskip("onnxruntime", reason="an optional peer: pip install '.[peers]'")
    from fastmlp.bench import isolated
    spawned = []

    def fake_spawn(args, env=None, timeout=None):
        who, out = args[1], args[-1]
        spawned.append(who)
        model, X = bench_inference._case(args[2], int(args[5]))
        np.save(out, model.forward(X) + (who == "onnxruntime"))  # off by one
        return {"rows_per_s": 100.0}, 1.0

    monkeypatch.setattr(isolated, "_spawn", fake_spawn)
    with pytest.raises(AssertionError, match="onnxruntime disagrees with fastmlp"):
        bench_inference.inference_rows(["mnist-small"], ("onnxruntime",), seconds=0.01,
                                       repeats=2, rows=50, timed=isolated.isolated_forward)
    assert spawned == ["fastmlp", "onnxruntime", "onnxruntime", "fastmlp"]  # alternated


def test_each_library_runs_in_its_own_processes_alternated(monkeypatch):
    from fastmlp.bench import isolated
    spawned = []

    def fake_spawn(args, env=None, timeout=None):
        spawned.append((tuple(args), env))
        return {"steps_per_s": {"fastmlp": 10.0, "torch": 5.0}[args[1]] + len(spawned)}, 1.0

    monkeypatch.setattr(isolated, "_spawn", fake_spawn)
    rates = isolated.isolated_rates("xor", ["fastmlp", "torch"], 0.5, 3)
    assert [a[1] for a, _ in spawned] == ["fastmlp", "torch", "torch", "fastmlp",
                                          "fastmlp", "torch"]  # rotated round by round
    assert all(a[0] == "rate" and a[2] == "xor" and a[3] == "0.5" for a, _ in spawned)
    assert rates == {"fastmlp": 10.0 + 5, "torch": 5.0 + 6}  # the best round of each


def test_first_result_starts_fastmlp_from_empty_caches_then_warm(monkeypatch):
    from fastmlp.bench import isolated
    spawned = []

    def fake_spawn(args, env=None, timeout=None):
        spawned.append((tuple(args), env))
        return {"done": True}, 20.0 if len(spawned) == 1 else 1.0

    monkeypatch.setattr(isolated, "_spawn", fake_spawn)
    rows = isolated.first_result_rows(["fastmlp", "sklearn"], 1)
    (cold, cold_env), (warm, warm_env), (peer, peer_env) = spawned
    assert cold == warm == ("first", "fastmlp") and peer == ("first", "sklearn")
    assert cold_env == warm_env and peer_env is None
    assert cold_env["NUMBA_CACHE_DIR"] == cold_env["FASTMLP_CACHE_DIR"]
    assert not os.path.exists(cold_env["NUMBA_CACHE_DIR"])  # a temporary directory, gone
    assert rows == {"fastmlp": {"cold_s": 20.0, "warm_s": 1.0},
                    "sklearn": {"cold_s": 1.0, "warm_s": 1.0}}


def test_a_first_result_runs_in_a_fresh_process():
    from fastmlp.bench import isolated
    rows = isolated.first_result_rows(["sklearn-digits"], 1)
    assert 0 < rows["sklearn-digits"]["cold_s"] == rows["sklearn-digits"]["warm_s"] < 600


def test_the_table_shows_the_fma_peak_and_the_first_result_rows():
    results = {"roofline_sgemm_gflops": 90.0, "fma_peak_gflops": 110.0, "device": "cpu",
               "isolated": True, "workloads": {}, "inference": {},
               "first_result": {"fastmlp": {"cold_s": 12.3, "warm_s": 0.8}}}
    table = bench.format_table(results)
    assert "FMA peak 110 GFLOP/s" in table and "its own fresh process" in table
    assert "fastmlp" in table and "12.3" in table and "0.80" in table


def test_the_fma_peak_is_measured():
    from fastmlp.bench.peak import fma_chains
    acc = np.ones(8, np.float32)
    assert fma_chains(acc, 3) == 2 * 8 * 8 * 3
    expected = np.ones(8, np.float32)
    for _ in range(3 * 8):
        expected = expected * np.float32(0.999) + np.float32(1e-3)
    np.testing.assert_allclose(acc, expected, rtol=1e-5)
    assert bench.fma_peak_gflops(seconds=0.01) > 0


def test_fashion_in_fresh_processes(tiny_fashion):
    from fastmlp.bench import isolated
    row = bench_fashion.fashion_row(("sklearn",), repeats=1, directory=str(tiny_fashion),
                                    epochs=1, train=isolated.isolated_fashion)
    assert set(row) == {"fastmlp", "sklearn"}
    assert all(figures["accuracy"] > 0.9 for figures in row.values())


def test_host_times_the_same_work_on_each_core_alone_and_together(capsys):
    from fastmlp.bench import host
    from fastmlp.core.cores import cores
    times = host.core_times(rounds=2, repeats=2)
    assert len(times["cores"]) == cores() and set(times["cores"]) <= os.sched_getaffinity(0)
    for mode in ("together", "alone"):
        assert len(times[mode]) == 2
        assert all(len(row) == cores() and min(row) > 0 for row in times[mode])
    lines = host.summary(times)
    assert len(lines) == 2 * cores() + 1 and lines[-1].startswith("largest ratio")
    before = os.sched_getaffinity(0)
    assert host.main(["1"]) == 0
    assert os.sched_getaffinity(0) == before  # the caller's affinity is left as it was
    out = capsys.readouterr().out
    assert "round  0: together" in out and "largest ratio between two cores" in out


def test_host_work_is_a_matrix_product():
    from fastmlp.bench import host
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 4)), rng.random((4, 5))
    c = np.ones((3, 5))
    host._work(a, b, c, 2)
    np.testing.assert_allclose(c, 1 + 2 * a @ b, rtol=1e-12)


def test_steadiness_is_none_where_threads_cannot_be_pinned(monkeypatch):
    from fastmlp.bench import host

    def refused(*args):
        raise PermissionError("sched_setaffinity refused")
    monkeypatch.setattr(host, "core_times", refused)
    monkeypatch.setattr(host, "cores", lambda: 2)
    assert host.steadiness() is None


def test_layouts_times_each_layout_with_its_own_kernel(monkeypatch, capsys):
    from fastmlp import config
    from fastmlp.bench import layouts
    from fastmlp.cpu import specialize
    taken = []
    kernel = specialize.kernel

    def recording(spec, loss, variant, layout=specialize.ROWS):
        taken.append(layout)
        return kernel(spec, loss, variant, layout)

    monkeypatch.setattr(specialize, "kernel", recording)
    before = config.SPECIALIZE_COLUMNS_MIN_BATCH
    layouts.main(["xor", "4", "--rounds", "1", "--steps", "50"])
    assert config.SPECIALIZE_COLUMNS_MIN_BATCH == before
    assert taken.count(specialize.ROWS) == taken.count(specialize.COLUMNS) == 2
    line = capsys.readouterr().out.splitlines()[-1]
    rows, columns = (float(v) for v in re.findall(r"([\d.]+) ns", line))
    assert line.startswith("batch    4:") and 0 < rows < 1e6 and 0 < columns < 1e6
    assert layouts.workload("3-5-2").layers == ((5, "tanh"), (2, "softmax"))
