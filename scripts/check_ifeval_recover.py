"""How well `rewards/ifeval/recover.py` gets a prompt's IF constraints back (docs/benchmarks/judge.md).

Counts the renderings in its table and the time to build it; then, on a built suite, the IF rows whose
recovered constraints equal their stored ones, and the IF preference pairs whose recovered constraints
pass the chosen response and fail the rejected one.

    .venv/bin/python scripts/check_ifeval_recover.py artifacts/data/<hash>
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rewards.ifeval import check_constraints
from rewards.ifeval.recover import constraints_in, rendering_table


def read(path: Path) -> list[dict]:
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="a built task-suite directory (artifacts/data/<hash>)")
    suite = Path(parser.parse_args().suite)
    started = time.perf_counter()
    print(f"renderings: {len(rendering_table())} in {time.perf_counter() - started:.2f} s")
    for split in ("ifeval_train", "ifeval_eval"):
        rows = read(suite / f"{split}.jsonl")
        exact = sum(constraints_in(r["prompt"]) == r["constraints"] for r in rows)
        print(f"{split}: {exact} of {len(rows)} recovered exactly")
    for split in ("pref_train", "pref_eval"):
        pairs = [p for p in read(suite / f"{split}.jsonl") if p["data_source"] == "rlsys/ifeval"]
        separated = 0
        for p in pairs:
            found = constraints_in(p["prompt"])
            separated += bool(found) and all(check_constraints(p["chosen"], found, p["prompt"])) \
                and not all(check_constraints(p["rejected"], found, p["prompt"]))
        print(f"{split}: {separated} of {len(pairs)} IF pairs: chosen passes, rejected fails")


if __name__ == "__main__":
    main()
