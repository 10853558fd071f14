import re

from rlsys.data.tasks.compose import CHAIN_TIER, chain_rows
from rlsys.data.tasks.math_tasks import split_of


def _recompute(row: dict) -> int:
    """The chain's answer from its own wording: step 1's answer (the solution's first `Step 2:` line
    restates it), then each follow-up step applied by hand."""
    value = int(re.search(r"^Step 2: (\d+) ", row["solution"], re.M).group(1))
    for line in row["prompt"].splitlines()[1:-1]:
        line = line.split(": ", 1)[1]
        k = int(re.findall(r"\d+", re.sub(r"step \d+", "", line))[0])
        if "Multiply" in line or "times" in line:
            value *= k
        elif "Subtract" in line or "away" in line:
            value -= k
        else:
            value += k
    return value


def test_chains_compute_what_they_say_and_feed_each_step():
    rows = chain_rows(200, "train", seed=5)
    assert len({r["key"] for r in rows}) == len(rows)
    for r in rows:
        assert r["tier"] == CHAIN_TIER and r["task"] == "math"
        steps = [ln for ln in r["prompt"].splitlines() if ln.startswith("Step ")]
        assert 2 <= len(steps) <= 3
        assert r["prompt"].endswith("What is the answer of the last step?")
        assert str(_recompute(r)) == r["answer"], r["prompt"]
        assert r["solution"].endswith(f"\\boxed{{{r['answer']}}}.")
        assert len(r["hints"]) == 5 and r["hints"][4] == r["solution"]
        # Levels 1-3 give no result: no number in them that is not in the question already.
        given = set(re.findall(r"\d+", r["prompt"]))
        assert all(set(re.findall(r"\d+", h)) <= given | {"1", "10"} for h in r["hints"][:3]), r["hints"]


def test_a_chain_stays_in_its_first_problems_split():
    for split in ("train", "eval"):
        for r in chain_rows(100, split, seed=1):
            first = re.match(r"chain\[(.*)\]", r["key"]).group(1)
            assert split_of(first) == split


def test_chains_are_seeded():
    assert chain_rows(20, "eval", 3) == chain_rows(20, "eval", 3)
    assert chain_rows(20, "eval", 3) != chain_rows(20, "eval", 4)

