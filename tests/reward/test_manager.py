import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlsys.reward.manager import RewardError, RewardManager
from rlsys.reward.plugins import RewardConfigError, combine, load_reward_fns

PLUGIN_SOURCE = '''
import asyncio
import math
import os
import time


def length_score(prompt, completion, scale=1.0, **fields):
    return {"score": scale * len(completion), "chars": len(completion), "label": "n"}


def exact(prompt, completion, answer=None, **fields):
    return float(completion == answer)


def flaky(prompt, completion, **fields):
    if completion == "raise":
        raise KeyError("boom")
    if completion == "hang":
        time.sleep(10_000)
    if completion == "nan":
        return math.nan
    if completion == "text":
        return "high"
    if completion == "stubborn":
        while True:  # swallows every interrupt, so only killing the worker stops it
            try:
                time.sleep(10_000)
            except BaseException:
                pass
    if completion == "crash":
        os._exit(3)
    return 1.0


async def async_score(prompt, completion, **fields):
    if completion == "hang":
        await asyncio.sleep(10_000)
    await asyncio.sleep(0.01)
    return 2.0


def batch_score(prompts, completions, answer=None, **fields):
    if "hang" in completions:
        time.sleep(10_000)
    return [float(c == a) for c, a in zip(completions, answer)]


batch_score.batched = True


def worker_pid(prompt, completion, **fields):
    return float(os.getpid())


class Scaled:
    def __init__(self, factor):
        self.factor = factor

    def __call__(self, prompt, completion, **fields):
        return self.factor * len(completion)


class Built:
    """Appends a line to `log` each time it is built (its setup runs), and scores 1."""

    def __init__(self, log, fail=False):
        self.log, self.fail = log, fail

    def setup(self):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        if self.fail:
            raise ValueError("no judge here")

    def __call__(self, prompt, completion, **fields):
        return 1.0


def typed(prompt, completion, **fields):
    return {"true": True, "false": False, "none": None, "text": "0.5", "list": [1.0], "dict_bool": {"score": True},
            "no_score": {"value": 1.0}, "int": 2, "float": 0.5, "dict": {"score": 0.25, "flag": True}}[completion]


def no_kwargs(prompt, completion):
    return 1.0


def one_arg(completion, **fields):
    return 1.0


NOT_CALLABLE = 3
'''

GOOD = ["ok", "fine"]


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # The plug-in lives outside the repository, found only through sys.path (which the worker inherits).
    root = tmp_path_factory.mktemp("plugins")
    (root / "my_rewards_plugin.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root))
    yield root
    mp.undo()


def _samples(completions: list[str], **fields: object) -> list[dict]:
    return [{"prompt": "p", "completion": c, "id": f"s{i}", **fields} for i, c in enumerate(completions)]


def _manager(entries: list[dict], **kwargs: object) -> RewardManager:
    options = {"timeout_s": 0.5, "on_error_score": -1.0, "kill_grace_s": 0.5, **kwargs}
    return RewardManager(load_reward_fns(entries), **options)


def test_plugin_file_outside_package_loads_from_one_entry(plugin_dir: Path) -> None:
    entry = {"_target_": "my_rewards_plugin.length_score", "name": "len", "kwargs": {"scale": 0.5}}
    with _manager([entry]) as manager:
        scores, extras, metrics = manager.score_batch(_samples(["abcd", "ab"]))
    assert scores == [2.0, 1.0]
    assert extras[0] == {"len": 2.0, "len/chars": 4.0, "len/label": "n"}
    assert metrics["reward/len/mean"] == 1.5
    assert metrics["reward/len/chars"] == 3.0
    assert "reward/len/label" not in metrics
    assert metrics["reward/errors/total"] == 0.0


def test_non_numeric_scores_are_isolated_errors_of_their_own_kind(plugin_dir: Path) -> None:
    # A bool is not a score (True would pass as 1.0), nor is a str, None, a list, or a dict without a numeric
    # "score"; a number, or a dict with one, is (extras may still be bools: 0/1 flags).
    completions = ["true", "int", "false", "none", "float", "text", "list", "dict_bool", "no_score", "dict"]
    with _manager([{"_target_": "my_rewards_plugin.typed"}]) as manager:
        scores, extras, metrics = manager.score_batch(_samples(completions))
    assert scores == [-1.0, 2.0, -1.0, -1.0, 0.5, -1.0, -1.0, -1.0, -1.0, 0.25]
    bad = [c not in ("int", "float", "dict") for c in completions]
    assert [e.get("typed/error") for e in extras] == [("non_numeric" if b else None) for b in bad]
    assert extras[-1]["typed/flag"] == 1.0
    assert metrics["reward/errors/non_numeric"] == 7.0
    assert metrics["reward/errors/total"] == 7.0 and metrics["reward/typed/errors"] == 7.0
    assert metrics["reward/scorer_restarts"] == 0.0


def test_failures_are_isolated_and_counted(plugin_dir: Path) -> None:
    completions = ["ok", "raise", "hang", "fine", "nan", "text", "stubborn", "crash", "last"]
    with _manager([{"_target_": "my_rewards_plugin.flaky"}]) as manager:
        start = time.monotonic()
        scores, extras, metrics = manager.score_batch(_samples(completions))
        elapsed = time.monotonic() - start
    assert scores == [1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, -1.0, 1.0]
    assert [e.get("flaky/error") for e in extras] == [
        None, "KeyError", "timeout", None, "nonfinite", "non_numeric", "timeout", "crash", None,
    ]
    assert metrics["reward/errors/KeyError"] == 1.0
    assert metrics["reward/errors/timeout"] == 2.0
    assert metrics["reward/errors/nonfinite"] == 1.0
    assert metrics["reward/errors/non_numeric"] == 1.0
    assert metrics["reward/errors/crash"] == 1.0
    assert metrics["reward/errors/total"] == 6.0
    assert metrics["reward/flaky/errors"] == 6.0
    # "stubborn" outlived the deadline and "crash" killed the scoring process: each cost a restart.
    assert metrics["reward/scorer_restarts"] == 2.0
    assert elapsed < 15


def test_worker_is_reused_across_batches_and_replaced_after_a_kill(plugin_dir: Path) -> None:
    entries = [{"_target_": "my_rewards_plugin.worker_pid"}, {"_target_": "my_rewards_plugin.flaky"}]
    with _manager(entries) as manager:
        first, _, _ = manager.score_batch(_samples(["ok"]))
        second, _, _ = manager.score_batch(_samples(["ok", "ok"]))
        assert first[0] - 1.0 == second[0] - 1.0 == second[1] - 1.0 != os.getpid()
        _, _, killed = manager.score_batch(_samples(["stubborn"]))
        third, _, after = manager.score_batch(_samples(["ok"]))
    assert third[0] != first[0]
    assert manager.restarts == 1
    # Counted in the batch that paid for it, not again in the next one.
    assert killed["reward/scorer_restarts"] == 1.0 and after["reward/scorer_restarts"] == 0.0


def test_preload_builds_each_entry_once_ahead_of_the_first_batch(plugin_dir: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.log", tmp_path / "bad.log"
    entries = [{"_target_": "my_rewards_plugin.Built", "name": "good", "kwargs": {"log": str(good)}},
               {"_target_": "my_rewards_plugin.Built", "name": "bad", "kwargs": {"log": str(bad), "fail": True}}]
    with _manager(entries) as manager:
        problems = manager.preload()
        assert list(problems) == ["bad"] and "ValueError: no judge here" in problems["bad"]
        assert len(good.read_text().splitlines()) == 1 and len(bad.read_text().splitlines()) == 1
        scores, extras, metrics = manager.score_batch(_samples(["a", "b"]))
    # The built entry is reused in the same process; the broken one is tried again and fails per sample.
    assert len(good.read_text().splitlines()) == 1
    assert len(bad.read_text().splitlines()) == 2
    assert [e["good"] for e in extras] == [1.0, 1.0] and [e["bad"] for e in extras] == [-1.0, -1.0]
    assert extras[0]["bad/error"] == "ValueError" and metrics["reward/errors/ValueError"] == 2.0
    assert manager.restarts == 0


def test_fail_on_error_names_function_and_sample(plugin_dir: Path) -> None:
    with _manager([{"_target_": "my_rewards_plugin.flaky"}], fail_on_error=True) as manager:
        with pytest.raises(RewardError, match=r"'flaky'.*sample 's1'.*KeyError"):
            manager.score_batch(_samples(["ok", "raise"]))


def test_async_and_batched_functions(plugin_dir: Path) -> None:
    entries = [
        {"_target_": "my_rewards_plugin.async_score", "name": "aio"},
        {"_target_": "my_rewards_plugin.batch_score", "name": "batch"},
    ]
    with _manager(entries) as manager:
        scores, extras, metrics = manager.score_batch(_samples(["a", "hang", "c"], answer="a"))
    assert [e["aio"] for e in extras] == [2.0, -1.0, 2.0]
    # The hung batch is re-run one sample at a time, so only the hanging sample loses its score.
    assert [e["batch"] for e in extras] == [1.0, -1.0, 0.0]
    assert scores == [3.0, -2.0, 2.0]
    assert metrics["reward/errors/timeout"] == 2.0


def test_batched_entry_flag_and_class_target(plugin_dir: Path) -> None:
    specs = load_reward_fns([
        {"_target_": "my_rewards_plugin.Scaled", "kwargs": {"factor": 3}},
        {"_target_": "my_rewards_plugin.exact", "batched": False},
    ])
    assert [(s.name, s.style, s.is_class) for s in specs] == [("Scaled", "sample", True), ("exact", "sample", False)]
    with RewardManager(specs, timeout_s=2) as manager:
        scores, _, _ = manager.score_batch(_samples(["ab", "x"], answer="x"))
    assert scores == [6.0, 4.0]


def test_weighted_sum_per_data_source(plugin_dir: Path) -> None:
    entries = [
        {"_target_": "my_rewards_plugin.exact", "name": "acc", "weight": 2.0, "data_sources": ["gsm8k"]},
        {"_target_": "my_rewards_plugin.length_score", "name": "len", "weight": 0.1},
        {"_target_": "ifeval", "weight": 1.0, "data_sources": ["ifeval"]},
    ]
    samples = [
        {"prompt": "p", "completion": "7", "answer": "7", "data_source": "gsm8k"},
        {"prompt": "p", "completion": "70", "answer": "7", "data_source": "gsm8k"},
        {"prompt": "p", "completion": "yes, ok", "data_source": "ifeval",
         "constraints": [{"type": "no_commas", "params": {}}, {"type": "all_lowercase", "params": {}}]},
        {"prompt": "p", "completion": "abc", "data_source": "other"},
    ]
    with _manager(entries, timeout_s=5) as manager:
        scores, extras, metrics = manager.score_batch(samples)
    assert scores == pytest.approx([2.1, 0.2, 0.5 + 0.7, 0.3])
    assert "acc" not in extras[2] and "ifeval" not in extras[0]
    assert metrics["reward/acc/mean"] == 0.5
    assert metrics["reward/ifeval/constraint/no_commas"] == 0.0
    assert metrics["reward/ifeval/constraint/all_lowercase"] == 1.0
    assert combine(manager.specs, {"acc": 1.0, "len": 5.0}, "gsm8k") == pytest.approx(2.5)


def test_unmatched_data_source_scores_zero_and_is_counted(plugin_dir: Path) -> None:
    entry = {"_target_": "my_rewards_plugin.exact", "data_sources": ["gsm8k"]}
    with _manager([entry]) as manager:
        scores, _, metrics = manager.score_batch(_samples(["x"], answer="x", data_source="new"))
    assert scores == [0.0]
    assert metrics["reward/unmatched"] == 1.0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"_target_": "no_such_module_xyz.fn"}, r"reward\.fns\[1\] \('no_such_module_xyz\.fn'\): module 'no_such_module_xyz' not found"),
        ({"_target_": "my_rewards_plugin.missing"}, r"reward\.fns\[1\] .*has no attribute 'missing'"),
        ({"_target_": "my_rewards_plugin.no_kwargs"}, r"reward\.fns\[1\] .*must accept \*\*kwargs"),
        ({"_target_": "my_rewards_plugin.one_arg"}, r"reward\.fns\[1\] .*must accept \(prompt, completion"),
        ({"_target_": "my_rewards_plugin.NOT_CALLABLE"}, r"reward\.fns\[1\] .*not a function or class"),
        ({"_target_": "my_rewards_plugin.Scaled"}, r"reward\.fns\[1\] .*cannot be constructed.*factor"),
        ({"_target_": "my_rewards_plugin.exact", "wieght": 2}, r"reward\.fns\[1\] .*unknown keys \['wieght'\]"),
        ({"_target_": "my_rewards_plugin.exact", "weight": "heavy"}, r"reward\.fns\[1\] .*'weight' must be"),
        ({"_target_": "my_rewards_plugin.exact", "data_sources": "gsm8k"}, r"reward\.fns\[1\] .*'data_sources'"),
        ({"_target_": "nonexistent_builtin"}, r"reward\.fns\[1\] .*unknown reward 'nonexistent_builtin'"),
        ({"_target_": "my_rewards_plugin.length_score"}, r"reward\.fns\[1\] .*name 'length_score' is already used"),
        ({"name": "x"}, r"reward\.fns\[1\]: missing '_target_'"),
    ],
)
def test_misconfigured_entries_fail_at_load(plugin_dir: Path, entry: dict, message: str) -> None:
    with pytest.raises(RewardConfigError, match=message):
        load_reward_fns([{"_target_": "my_rewards_plugin.length_score"}, entry])


def test_kwargs_that_do_not_fit_the_signature_fail_at_load(plugin_dir: Path) -> None:
    with pytest.raises(RewardConfigError, match=r"reward\.fns\[0\] .*multiple values for argument 'prompt'"):
        load_reward_fns([{"_target_": "my_rewards_plugin.exact", "kwargs": {"prompt": "x"}}])
    with pytest.raises(RewardConfigError, match=r"reward\.fns\[0\] .*cannot be constructed.*'extra'"):
        load_reward_fns([{"_target_": "my_rewards_plugin.Scaled", "kwargs": {"factor": 1, "extra": 2}}])


def test_builtin_with_config_kwargs_and_row_fields(plugin_dir: Path) -> None:
    entries = [{"_target_": "math"}, {"_target_": "length", "kwargs": {"max_len": 4, "buffer": 2}}]
    samples = [
        {"prompt": "p", "completion": r"so \boxed{\frac{1}{2}}", "answer": "0.5"},
        {"prompt": "p", "completion": "a b c the answer is 3", "answer": "4"},
    ]
    with _manager(entries, timeout_s=10) as manager:
        scores, extras, metrics = manager.score_batch(samples)
    assert scores == [1.0, -1.0]  # 2 words: no length penalty; 7 words: past max_len
    assert extras[0]["math"] == 1.0 and extras[0]["math/extracted"] == r"\frac{1}{2}"
    assert extras[1]["math/extracted"] == "3" and extras[1]["length"] == -1.0
    assert metrics["reward/math/acc"] == 0.5


def test_unasked_markup_penalty_combines_with_ifeval_on_if_rows() -> None:
    """The align_plain pair of entries on a real IF row (constraints as the JSON string rows carry): the
    answer meets its one constraint (1.0) and carries an unasked placeholder (-0.5 at weight 0.5)."""
    import json

    entries = [{"_target_": "ifeval", "data_sources": ["rlsys/ifeval"]},
               {"_target_": "unasked_markup", "weight": 0.5, "data_sources": ["rlsys/ifeval"]}]
    constraints = json.dumps([{"type": "no_commas", "params": {}}])
    samples = _samples(["Dear [name] hello", "hello there"], data_source="rlsys/ifeval", constraints=constraints)
    samples.append({"prompt": "p", "completion": "[x]", "id": "m", "data_source": "rlsys/math"})
    with _manager(entries, timeout_s=5.0) as manager:
        scores, extras, metrics = manager.score_batch(samples)
    assert scores == [0.75, 1.0, 0.0]
    assert extras[0]["unasked_markup/unasked/placeholders"] == 1.0 and extras[1]["unasked_markup"] == 0.0
    assert "unasked_markup" not in extras[2]
    assert metrics["reward/unasked_markup/unasked/placeholders"] == 0.5
