"""Fail unless every benchmark of the suite ran on COMMIT: reads the results `asv run` stored
(.asv/results/<machine>/<hash>-<env>.json) against the suite asv discovered
(.asv/results/benchmarks.json). asv stores null for a benchmark that failed or timed out and
NaN for one that was skipped; a benchmark missing from the file did not run at all.

The one expected skip: benchmarks/fashion.py when Fashion-MNIST's files are not on the
machine (its own data_directory() says where it looked).

    python .ci/check_asv_results.py COMMIT [RESULTS_DIR]
"""
import glob
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fashion_files_present():
    sys.path.insert(0, ROOT)
    from benchmarks.fashion import data_directory
    try:
        data_directory()
    except NotImplementedError:
        return False
    return True


def expected_skip(name):
    return name.startswith("fashion.") and not fashion_files_present()


def combinations(benchmark):
    """One label per parameter combination, in asv's order (the results list's order)."""
    labels = [""]
    for values in benchmark.get("params") or []:
        labels = [f"{label}, {value}" if label else str(value) for label in labels
                  for value in values]
    return labels


def problems(suite, stored):
    """Lines naming each benchmark (and parameters) that failed, was skipped or is missing."""
    columns = stored.get("result_columns", ["result"])
    found = []
    for name, benchmark in sorted(suite.items()):
        if name == "version":
            continue
        row = stored["results"].get(name)
        if row is None:
            found.append(f"{name}: did not run (no result stored)")
            continue
        values = dict(zip(columns, row))["result"]
        values = values if isinstance(values, list) else [values]
        for label, value in zip(combinations(benchmark), values):
            where = f"{name}({label})" if label else name
            if value is None:
                found.append(f"{where}: failed")
            elif isinstance(value, float) and math.isnan(value) and not expected_skip(name):
                found.append(f"{where}: skipped")
    return found


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    commit = subprocess.run(["git", "rev-parse", sys.argv[1]], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    results_dir = sys.argv[2] if len(sys.argv) == 3 else os.path.join(ROOT, ".asv", "results")
    with open(os.path.join(results_dir, "benchmarks.json")) as f:
        suite = json.load(f)
    files = glob.glob(os.path.join(results_dir, "*", f"{commit[:8]}-*.json"))
    if not files:
        sys.exit(f"no asv results for {commit[:8]} in {results_dir}: did `asv run` run it?")
    failures = []
    for path in files:
        with open(path) as f:
            failures += [f"{os.path.basename(path)}: {line}"
                         for line in problems(suite, json.load(f))]
    if failures:
        sys.exit(f"asv on {commit[:8]}: {len(failures)} benchmark(s) did not run as they "
                 "should:\n  " + "\n  ".join(failures))
    print(f"asv on {commit[:8]}: every benchmark of {len(suite) - 1} ran "
          f"({len(files)} environment(s))")


if __name__ == "__main__":
    main()
