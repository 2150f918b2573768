"""README's reliability table (issue 23, must-show 5): every promise names the tests behind
it as `file::test` (`::test`: in the file named before it), and every test named exists."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Reliability: what is promised, and the test that shows it")[1]
    section = section.split("\n## ")[0]
    return [line for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| promise")]


def test_every_reliability_promise_names_tests_that_exist():
    rows = _rows()
    assert len(rows) >= 15
    for row in rows:
        promise, shown = row.strip("|").rsplit("|", 1)
        cited = re.findall(r"`((?:tests/[\w/]+\.py)?::\w+)`", shown)
        assert cited, f"no test named for: {promise.strip()[:80]}"
        current = None
        for reference in cited:
            path, name = reference.split("::")
            current = path or current
            assert current is not None, reference
            with open(os.path.join(ROOT, current), encoding="utf-8") as f:
                source = f.read()
            assert re.search(rf"^\s*def {name}\(", source, re.M), f"{current}::{name}"


def test_ci_runs_the_readmes_test_command_verbatim():
    """CI's contract: .ci/run runs exactly the test command of the README's set-up block."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        line = next(l for l in f if l.rstrip().endswith("# run the tests"))
    command = line.split("&&", 1)[1].split("#", 1)[0].strip()
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert command in [l.strip() for l in f], command
