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
