"""fastmlp's CUDA path on a real GPU, in one prepared command that stops at a time limit.

    python benchmarks/gpu/check.py OUTDIR [--simulate] [--time-limit SECONDS]
                                         [--only STAGE,STAGE,...]

Stages, in order (stages.py runs each one; docs/gpu.md says what each measures):

    env        the GPU (nvidia-smi), the driver, CUDA and the versions of numba, numba-cuda,
               torch and jax
    install    this checkout over the packages already there, without dependencies:
               pip install --no-deps --no-build-isolation --no-index -e .
    fit        fit_check.py: small CUDA fits against the CPU, one per training path, at
               the default launch shapes; each kernel's registers and shared memory
    tests      pytest tests/cuda on the hardware (the simulator off)
    memcheck   fit_check.py --quick under compute-sanitizer --tool memcheck
    racecheck  the same under compute-sanitizer --tool racecheck
    bench      bench_cuda.py: fastmlp against PyTorch CUDA eager and JAX GPU, four workloads

Each stage gets a share of the time left (its weight over the weights of the stages still
to run), runs in a subprocess killed with its process group at that share's end, and is
recorded in OUTDIR/summary.json as ok, failed, timeout, refused (a sanitizer the machine
refuses) or skipped, with the reason. summary.json is rewritten as each stage starts and
ends, so a run killed from outside still leaves what it did. OUTDIR receives seven files:
summary.json, env.log, fit.log, tests.log, sanitizer.log, bench.log and bench.json.

--simulate runs the same logic on a machine without a GPU, in Numba's CUDA simulator with
tiny launch shapes: no install, no sanitizer, no peers, a few tests, one workload.

Exit status: 0 when every stage that ran was ok or refused and none was cut by the time
limit, 1 otherwise, 2 for bad arguments.
"""
import argparse
import datetime
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import stages  # noqa: E402 (beside this file, not an installed package)

# (stage, weight): a stage's share of the time left is its weight over the weights of the
# stages still to run. On the GPU the default limit gives roughly these seconds. fit and
# tests compile every CPU and CUDA kernel cold on a fresh machine (the CPU kernels' cache
# is per processor model): tens of seconds each.
WEIGHTS = [("env", 20), ("install", 25), ("fit", 90), ("tests", 120), ("memcheck", 40),
           ("racecheck", 50), ("bench", 75)]
SIMULATE_WEIGHTS = {"env": 10, "fit": 40, "tests": 40, "bench": 30}
DEFAULT_LIMIT = 420.0           # seconds: seven minutes, under the eight
# A cap: --simulate takes under a minute once the CPU kernels are in Numba's cache, longer
# on a first run that compiles them.
SIMULATE_LIMIT = 240.0
RESERVE = 3.0                   # seconds kept back for writing the summary
LEAST = 5.0                     # a stage with less time than this is skipped


def share(remaining, weights, names):
    """Seconds for names[0]: `remaining` split over names in proportion to their weights."""
    total = sum(weights[name] for name in names)
    return remaining * weights[names[0]] / total if total else 0.0


class Run:
    """The record of one run of the check, rewritten to OUTDIR/summary.json as it goes."""

    def __init__(self, args, argv):
        self.args = args
        self.outdir = os.path.abspath(args.outdir)
        self.start = time.monotonic()
        self.deadline = self.start + args.time_limit - RESERVE
        self.summary = {
            "command": " ".join(["python", "benchmarks/gpu/check.py"] + argv),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "finished": None, "time_limit_s": args.time_limit, "simulate": args.simulate,
            "stages": [], "gpu": None, "versions": {}, "exit_status": None}

    def left(self):
        return self.deadline - time.monotonic()

    def write(self):
        self.summary["elapsed_s"] = round(time.monotonic() - self.start, 1)
        self.summary["files"] = sorted(os.listdir(self.outdir))
        path = os.path.join(self.outdir, "summary.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.summary, f, indent=2)
        os.replace(path + ".tmp", path)  # never a half-written summary


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="check.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", help="folder for the logs, bench.json and summary.json")
    parser.add_argument("--simulate", action="store_true",
                        help="no GPU: Numba's CUDA simulator, tiny sizes, no sanitizer/peers")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help=f"stop cleanly by then (default {DEFAULT_LIMIT:g}; "
                             f"{SIMULATE_LIMIT:g} with --simulate)")
    parser.add_argument("--only", default=None, metavar="STAGES",
                        help="comma-separated stages to run, e.g. tests,bench (others are "
                             "recorded as skipped)")
    args = parser.parse_args(argv)
    names = [name for name, _ in WEIGHTS]
    if args.only is not None:
        chosen = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in names]
        if unknown or not chosen:
            parser.error(f"--only: unknown stage(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(names)}")
        args.only = chosen
    if args.time_limit is None:
        args.time_limit = SIMULATE_LIMIT if args.simulate else DEFAULT_LIMIT
    if not args.time_limit > RESERVE + LEAST:
        parser.error(f"--time-limit must be more than {RESERVE + LEAST:g} seconds")
    return args


def print_table(run):
    print("\nstage      status    seconds  reason", flush=True)
    for stage in run.summary["stages"]:
        seconds = "" if stage.get("seconds") is None else f"{stage['seconds']:.1f}"
        print(f"{stage['name']:<10} {stage['status']:<9} {seconds:>7}  "
              f"{stage.get('reason', '')}")
    bench_log = os.path.join(run.outdir, "bench.log")
    table = stages.bench_table(bench_log)
    if table:
        print("\n" + table)
    print(f"\nfiles in {run.outdir}: {', '.join(run.summary['files'])}")
    print(f"exit status {run.summary['exit_status']} after {run.summary['elapsed_s']} s "
          f"(limit {run.args.time_limit:g} s)", flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    run = Run(args, argv)
    weights = dict(WEIGHTS)
    if args.simulate:
        weights.update(SIMULATE_WEIGHTS)
    names = [name for name, _ in WEIGHTS if args.only is None or name in args.only]
    context = stages.Context(outdir=run.outdir, simulate=args.simulate)
    run.summary["stages"] = [{"name": name, "status": "pending"} for name, _ in WEIGHTS]
    records = {stage["name"]: stage for stage in run.summary["stages"]}
    for name, _ in WEIGHTS:
        if name not in names:
            records[name].update(status="skipped", reason="not in --only")
        elif stages.skip_reason(context, name):  # decided now: no time is set aside for it
            records[name].update(status="skipped", reason=stages.skip_reason(context, name))
    names = [name for name in names if records[name]["status"] == "pending"]

    def stop(signum, frame):  # killed from outside: record it, end the child, leave
        stages.stop_child()
        for stage in run.summary["stages"]:
            if stage["status"] == "running":
                stage.update(status="timeout", reason=f"interrupted by signal {signum}")
        run.summary["exit_status"] = 128 + signum
        run.write()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    run.write()
    for i, name in enumerate(names):
        record = records[name]
        budget = share(run.left(), weights, names[i:])
        if budget < LEAST:
            record.update(status="skipped", budget_s=round(budget, 1),
                          reason=f"time limit: {max(run.left(), 0):.0f} s left of "
                                 f"{args.time_limit:g} s")
            run.write()
            continue
        record.update(status="running", budget_s=round(budget, 1))
        run.write()
        print(f"[{time.monotonic() - run.start:6.1f} s] {name}: up to {budget:.0f} s",
              flush=True)
        began = time.monotonic()
        try:
            outcome = getattr(stages, f"stage_{name.replace('-', '_')}")(context, budget)
        except Exception as error:  # the check's own fault: recorded, and the rest goes on
            outcome = {"status": "failed", "reason": f"check.py: {type(error).__name__}: "
                                                     f"{error}"}
        record.update(outcome, seconds=round(time.monotonic() - began, 1))
        for key in ("gpu", "versions"):
            if key in outcome:
                run.summary[key] = record.pop(key)
        print(f"[{time.monotonic() - run.start:6.1f} s] {name}: {record['status']}"
              f"{' (' + record['reason'] + ')' if record.get('reason') else ''}", flush=True)
        run.write()
    bad = [s for s in run.summary["stages"] if s["status"] in ("failed", "timeout")
           or (s["status"] == "skipped" and s.get("reason", "").startswith("time limit"))]
    run.summary["exit_status"] = 1 if bad else 0
    run.summary["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    run.write()
    print_table(run)
    return run.summary["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
