"""fastmlp on device="cuda" against PyTorch CUDA eager and JAX on the GPU, in one process and
one run, on the four workloads of fastmlp.bench.workloads.

    python benchmarks/gpu/bench_cuda.py --json PATH [--workload NAME ...] [--seconds S]
        [--repeats R] [--no-peers] [--simulate]

fastmlp's figures come from fastmlp.bench.run.run_bench(device="cuda"), the function behind
`fastmlp bench --device cuda --json`; that command's own peers run on the CPU, so the GPU
peers come from peers.py beside this file. The JSON has run_bench's layout (workloads ->
who -> steps_per_s, samples_per_s, gflops, fastmlp_ratio) plus, for fastmlp, the training
path and launches per step, and the issue's goals with whether this run met them. It is
rewritten after every workload, so a run cut short keeps what it measured.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# (workload, peer, least fastmlp_ratio): JAX pays a loop iteration per step where a fused
# multi-step launch need not; the wide networks should keep up with PyTorch eager.
GOALS = [("xor", "jax-gpu", 10.0), ("x2", "jax-gpu", 10.0),
         ("mnist-small", "torch-cuda", 1.0), ("mnist-wide", "torch-cuda", 1.0)]


def gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def fastmlp_figures(name, seconds, repeats):
    from fastmlp.bench.run import run_bench
    from fastmlp.bench.cuda import time_train_steps
    figures = run_bench([name], seconds=seconds, repeats=repeats, peers=(), device="cuda",
                        log=lambda message: None)["workloads"][name]["fastmlp"]
    probe = time_train_steps(name, steps=20)  # how it ran: path and launches per step
    figures.update(path=probe["path"], launches_per_step=probe["launches_per_step"])
    return figures


def peer_figures(peer, workload, seconds, repeats):
    from peers import PEERS
    try:
        rate = PEERS[peer](workload, seconds, repeats)
    except Exception as error:  # a missing or broken peer is reported, not fatal
        return {"error": f"{type(error).__name__}: {error}"}
    flops = workload.flops_per_step()
    return {"steps_per_s": rate, "samples_per_s": rate * workload.batch_size,
            "gflops": rate * flops / 1e9}


def goals(results):
    met = []
    for name, peer, least in GOALS:
        row = results["workloads"].get(name, {})
        ratio = row.get(peer, {}).get("fastmlp_ratio")
        met.append({"workload": name, "peer": peer, "least_ratio": least, "ratio": ratio,
                    "met": None if ratio is None else ratio >= least})
    return met


def format_table(results):
    lines = [f"GPU: {results['gpu']}; {results['date']}; seconds {results['seconds']}, "
             f"best of {results['repeats']}; float32, no TF32", ""]
    header = (f"{'workload':<12} {'who':<11} {'steps/s':>12} {'samples/s':>13} "
              f"{'GFLOP/s':>9} {'fastmlp x':>10}  notes")
    lines += [header, "-" * len(header)]
    for name, row in results["workloads"].items():
        for who, r in row.items():
            if "error" in r:
                lines.append(f"{name:<12} {who:<11} {'-':>12} {'-':>13} {'-':>9} {'':>10}  "
                             f"{r['error'][:60]}")
                continue
            ratio = f"{r['fastmlp_ratio']:.2f}x" if "fastmlp_ratio" in r else ""
            notes = f"{r['path']}, {r['launches_per_step']:.3g} launches/step" \
                if "path" in r else ""
            lines.append(f"{name:<12} {who:<11} {r['steps_per_s']:>12,.0f} "
                         f"{r['samples_per_s']:>13,.0f} {r['gflops']:>9.2f} {ratio:>10}  "
                         f"{notes}")
    for goal in results["goals"]:
        state = "not measured" if goal["met"] is None else ("met" if goal["met"] else
                                                            "NOT met")
        lines.append(f"goal: {goal['workload']} fastmlp >= {goal['least_ratio']:g}x "
                     f"{goal['peer']}: {state}")
    return "\n".join(lines)


def workload_names(requested, error):
    """The workloads to run: those requested, else all but fashion, which trains on
    Fashion-MNIST's files (a GPU machine lacks them, and run_bench leaves its row out)."""
    from fastmlp.bench.workloads import WORKLOADS
    synthetic = [name for name in WORKLOADS if name != "fashion"]
    unknown = sorted(set(requested or ()) - set(synthetic))
    if unknown:
        error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(synthetic)}")
    return requested or synthetic


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True, metavar="PATH")
    parser.add_argument("--workload", action="append", help="repeatable; default: all four")
    parser.add_argument("--seconds", type=float, default=0.5, help="least time per sample")
    parser.add_argument("--repeats", type=int, default=2, help="samples per figure, best kept")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--simulate", action="store_true",
                        help="Numba's CUDA simulator, tiny launch shapes, no peers")
    args = parser.parse_args(argv)
    if args.simulate:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    # JAX takes most of the GPU's memory at its first use unless told not to.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    sys.path[:0] = [ROOT, HERE]
    from fastmlp import config
    from fastmlp.bench.workloads import WORKLOADS
    if args.simulate:
        from fit_check import SIMULATOR_CONFIG
        for key, value in SIMULATOR_CONFIG.items():
            setattr(config, key, value)
    names = workload_names(args.workload, parser.error)
    peers = () if args.no_peers or args.simulate else ("torch-cuda", "jax-gpu")
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
               "gpu": "simulator" if args.simulate else gpu_name(),
               "seconds": args.seconds, "repeats": args.repeats, "tf32": False,
               "peers": list(peers), "workloads": {}, "goals": []}
    for name in names:
        workload = WORKLOADS[name]
        start = time.perf_counter()
        row = {"fastmlp": fastmlp_figures(name, args.seconds, args.repeats)}
        for peer in peers:
            row[peer] = peer_figures(peer, workload, args.seconds, args.repeats)
            if "steps_per_s" in row[peer]:
                row[peer]["fastmlp_ratio"] = (row["fastmlp"]["steps_per_s"]
                                              / row[peer]["steps_per_s"])
        results["workloads"][name] = row
        results["goals"] = goals(results)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
