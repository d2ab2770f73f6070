"""Hostile-input bench: the property tests of tests/test_hostile_input.py with many more examples.

    .venv/bin/python bench/hostile.py [--examples 400]

CI runs each property with a few dozen generated requests (hypothesis profile "ci"); this runs
them with `--examples` each (profile "long", not derandomized, so every run explores anew),
against the same real kefu on 127.0.0.1. Prints a table (property, outcome, seconds) and writes
bench/results/hostile.json. A failure prints hypothesis' shrunk example: the request to fix.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=400, help="generated requests per property")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "junit.xml"
        env = {**os.environ, "KEFU_HYPOTHESIS_PROFILE": "long", "KEFU_HYPOTHESIS_EXAMPLES": str(args.examples)}
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/test_hostile_input.py", f"--junitxml={report}"], cwd=REPO, env=env)
        elapsed = time.perf_counter() - started
        rows = []
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            failed = case.find("failure") is not None or case.find("error") is not None
            rows.append({"test": case.get("name"), "seconds": round(float(case.get("time", 0)), 2),
                         "outcome": "failed" if failed else ("skipped" if case.find("skipped") is not None
                                                             else "passed")})
    width = max(len(row["test"]) for row in rows)
    print(f"\n{'test':<{width}}  outcome  seconds")
    for row in rows:
        print(f"{row['test']:<{width}}  {row['outcome']:<7}  {row['seconds']:>7.2f}")
    failed = sum(row["outcome"] == "failed" for row in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed in {elapsed:.0f} s ({args.examples} examples per property)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hostile.json").write_text(json.dumps(
        {"examples_per_property": args.examples, "seconds": round(elapsed, 1), "tests": rows}, indent=2))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
