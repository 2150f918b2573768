"""`fastmlp bench`: the benchmark workloads on fastmlp and, when installed, PyTorch (eager) and
JAX (jit + lax.scan), each library in fresh processes of its own (isolated.py), beside
numpy's sgemm roofline and one core's measured FMA peak.

Every figure excludes compilation: each runner warms up first, then times whole training
runs of at least `seconds` seconds, best of `repeats`. The `fashion` workload trains on
Fashion-MNIST instead (fashion.py, with scikit-learn as a fourth trainer and test
accuracy), and mnist-small and mnist-wide add inference rows: `forward` on 10,000 rows
against ONNX Runtime and PyTorch (inference.py).
"""
import json
import math
import os
import time

import numpy as np

from .rates import PEERS, fastmlp_rate
from .workloads import WORKLOADS


def sgemm_gflops(n=1024, repeats=5):
    """numpy's float32 GEMM rate on this machine: the roofline for the GEMM-bound workloads."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    out = np.empty_like(a)
    np.dot(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


#: Every library compared somewhere: training (torch, jax), the fashion row (also sklearn),
#: inference (also onnxruntime).
ALL_PEERS = ("torch", "jax", "sklearn", "onnxruntime")
_PEER_MODULES = {"torch": "torch", "jax": "optax", "sklearn": "sklearn",
                 "onnxruntime": "onnxruntime"}


def _installed(peers, log):
    found = []
    for peer in peers:
        try:
            __import__(_PEER_MODULES[peer])
            found.append(peer)
        except ImportError:
            log(f"({peer} not installed: pip install 'fastmlp[peers]' to compare)")
    return found


def fma_peak_gflops(seconds=0.2):
    """One core's float32 fused multiply-add peak, measured (peak.fma_chains), best of 3."""
    from .peak import fma_chains
    acc = np.ones(128, np.float32)
    fma_chains(acc, 10)  # compile (or load)
    passes, best = 1 << 12, 0.0
    while best == 0.0:
        for _ in range(3):
            start = time.perf_counter()
            flops = fma_chains(acc, passes)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                best = max(best, flops / elapsed / 1e9)
        passes = int(passes * 1.5 * seconds / max(elapsed, 1e-6))
    return best


def run_bench(names=None, seconds=1.0, repeats=3, peers=("torch", "jax"), device="cpu",
              log=print, fashion_dir=None, isolate=True, first_result=False):
    """{"roofline_sgemm_gflops", "fma_peak_gflops", "device", "workloads": {name: {who:
    figures}}, "inference": {name: {who: figures}}, "first_result": {who: figures}}; the
    peers run on the CPU (their CPU builds), beside fastmlp on `device`.

    isolate: each training figure in a fresh process per library (isolated.py), the
    libraries alternated over `repeats` rounds, best round kept; otherwise all in this
    process, best of `repeats` runs each; the Fashion-MNIST row and the inference rows (the
    selected workloads of inference.INFERENCE_WORKLOADS, on the CPU) likewise.
    first_result: add the cold-start rows (isolated.first_result_rows)."""
    from .fashion import fashion_row
    from .inference import inference_rows
    from .isolated import FIRST_RESULT, FIRST_RESULT_DROP_IN, first_result_rows, \
        isolated_fashion, isolated_forward, isolated_rates
    from .host import steadiness
    names = names or list(WORKLOADS)
    roofline = sgemm_gflops()
    results = {"roofline_sgemm_gflops": roofline, "fma_peak_gflops": fma_peak_gflops(),
               "device": device, "isolated": isolate, "workloads": {}, "inference": {},
               "load_average": _load_average(), "kernels": _kernels(),
               "cores": steadiness()}
    installed = _installed(peers, log)
    available = {peer: PEERS[peer] for peer in installed if peer in PEERS}
    for name in names:
        w = WORKLOADS[name]
        if name == "fashion":
            row = fashion_row(installed, repeats, fashion_dir, log, device,
                              train=isolated_fashion if isolate else None)
            if row is not None:
                _add_ratios(row)
                results["workloads"][name] = row
            continue
        flops = w.flops_per_step()
        row = {}
        if isolate:
            rates = isolated_rates(name, ["fastmlp", *available], seconds, repeats, device)
        else:
            rates = {"fastmlp": fastmlp_rate(w, seconds, repeats, device)}
            rates.update({who: fn(w, seconds, repeats) for who, fn in available.items()})
        for who, rate in rates.items():
            row[who] = {"steps_per_s": rate, "samples_per_s": rate * w.batch_size,
                        "gflops": rate * flops / 1e9}
        _add_ratios(row)
        results["workloads"][name] = row
    if first_result:
        libraries = ["fastmlp", *[p for p in installed if p in FIRST_RESULT]]
        drop_in = list(FIRST_RESULT_DROP_IN) if "sklearn" in installed else \
            ["fastmlp-sklearn"]
        results["first_result"] = first_result_rows(libraries, repeats)
        results["first_result"].update(first_result_rows(drop_in, repeats))
    if device == "cpu":
        results["inference"] = inference_rows(names, installed, seconds, repeats, log,
                                              timed=isolated_forward if isolate else None)
    # Measured again at the end: on a shared host the load drifts during a run, and a
    # roofline that moved says the ratios in between are not to be trusted.
    results["roofline_sgemm_gflops_end"] = sgemm_gflops()
    results["load_average_end"] = _load_average()
    results["cores_end"] = steadiness()
    return results


def _load_average():
    """The host's 1-minute load average (None where the OS does not report one)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _format_load(load):
    return "n/a" if load is None else f"{load:.1f}"


def _kernels():
    """Where fastmlp's kernels come from in this run: the shipped ones (cpu/ship.py), or
    compiled on this machine, and why."""
    from ..core import shipped
    return shipped.status()[0]


def _add_ratios(row):
    for who, figures in row.items():
        if who != "fastmlp":
            figures["fastmlp_ratio"] = row["fastmlp"]["steps_per_s"] / figures["steps_per_s"]


def format_table(results):
    from ..cpu.threads import most_threads
    roofline = results["roofline_sgemm_gflops"]
    lines = [f"numpy sgemm roofline: {roofline:.0f} GFLOP/s (float32, 1024x1024); one "
             f"core's FMA peak {results.get('fma_peak_gflops', float('nan')):.0f} GFLOP/s; "
             f"fastmlp on {results['device']} (CPU: up to {most_threads()} threads, timed); "
             f"torch, JAX: their default threads; "
             + ("each library in its own fresh process, best of the rounds"
                if results.get("isolated") else "every library in this one process")]
    if "kernels" in results:
        lines.append(f"fastmlp's kernels: {results['kernels']}")
    if "roofline_sgemm_gflops_end" in results:
        lines.append(f"at the end of the run: {results['roofline_sgemm_gflops_end']:.0f} "
                     f"GFLOP/s; load average {_format_load(results.get('load_average'))} at "
                     f"the start, {_format_load(results.get('load_average_end'))} at the end")
    if results.get("cores"):
        lines.append("cores (python -m fastmlp.bench.host): " + "; ".join(
            f"{when} the same work took up to {c['round_spread']:.2f}x longer on a core from "
            f"round to round, {c['core_ratio']:.2f}x between cores at once"
            for when, c in (("at the start", results["cores"]),
                            ("at the end", results.get("cores_end"))) if c))
    lines.append("")
    header = f"{'workload':<12} {'who':<8} {'steps/s':>11} {'samples/s':>12} {'GFLOP/s':>9} " \
             f"{'% sgemm':>8} {'fastmlp x':>10} {'test acc':>9}"
    lines += [header, "-" * len(header)]
    for name, row in results["workloads"].items():
        for who, r in row.items():
            ratio = f"{r['fastmlp_ratio']:.2f}x" if "fastmlp_ratio" in r else ""
            accuracy = f"{100 * r['accuracy']:.2f}%" if "accuracy" in r else ""
            lines.append(f"{name:<12} {who:<8} {r['steps_per_s']:>11,.0f} "
                         f"{r['samples_per_s']:>12,.0f} {r['gflops']:>9.1f} "
                         f"{100 * r['gflops'] / roofline:>7.0f}% {ratio:>10} {accuracy:>9}")
    if results.get("inference"):
        from .inference import INFERENCE_ROWS
        header = f"{'forward':<12} {'who':<12} {'rows/s':>12} {'fastmlp x':>10}"
        lines += ["", f"inference: forward on {INFERENCE_ROWS:,} rows, float32", header,
                  "-" * len(header)]
        for name, row in results["inference"].items():
            for who, r in row.items():
                ratio = f"{r['fastmlp_ratio']:.2f}x" if "fastmlp_ratio" in r else ""
                lines.append(f"{name:<12} {who:<12} {r['rows_per_s']:>12,.0f} {ratio:>10}")
    if results.get("first_result"):
        header = f"{'first result':<16} {'cold s':>8} {'warm s':>8}"
        lines += ["", "first result in a fresh process, wall seconds including imports "
                  "(cold: empty kernel caches, a fresh install)", header, "-" * len(header)]
        for who, r in results["first_result"].items():
            lines.append(f"{who:<16} {r['cold_s']:>8.1f} {r['warm_s']:>8.2f}")
    return "\n".join(lines)


def main(args):
    results = run_bench(args.workload, seconds=args.seconds, repeats=args.repeats,
                        peers=() if args.no_peers else ALL_PEERS, device=args.device,
                        fashion_dir=args.data_dir, isolate=not args.same_process,
                        first_result=args.first_result)
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0
