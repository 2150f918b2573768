"""`fastmlp bench`: one table, JSON, workload selection; tiny timings, never asserted on."""
import json

import pytest

from fastmlp import bench
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
    assert data["roofline_sgemm_gflops"] > 0


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
