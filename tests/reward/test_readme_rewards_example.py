"""The README's custom-reward example, run exactly as written: its file, its one config line."""

import re
import sys
from pathlib import Path

import pytest
import yaml

from rlsys.reward.manager import RewardManager
from rlsys.reward.plugins import load_reward_fns

SECTION = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    """The README's "Custom rewards" section, up to the next heading of the same level."""
    text = SECTION.read_text()
    start = text.index("## Custom rewards")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _block(text: str, lang: str) -> str:
    found = re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)
    assert found, f"no {lang} block in {SECTION}"
    return found[0]


def test_readme_plugin_loads_from_one_config_line_and_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _section()
    (tmp_path / "my_rewards.py").write_text(_block(text, "python"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_rewards", raising=False)
    entries = yaml.safe_load(_block(text, "yaml"))["fns"]
    samples = [
        {"prompt": "What is 6 * 7?", "completion": "<think>6 * 7 = 42</think>The answer is 42.", "answer": "42",
         "data_source": "rlsys/math", "id": "a"},
        {"prompt": "What is 6 * 7?", "completion": "It is 41. " + "word " * 77, "answer": "42",
         "data_source": "rlsys/math", "id": "b"},
        {"prompt": "Write a poem.", "completion": "roses", "data_source": "rlsys/ifeval", "id": "c"},
    ]
    with RewardManager(load_reward_fns(entries), timeout_s=5.0) as manager:
        scores, extras, metrics = manager.score_batch(samples)
    # 80 words against max_words: 40 from the config line: the full 0.5 penalty.
    assert scores == [1.0, -0.5, 0.0]
    assert extras[0]["concise_answer/hit"] == 1.0 and extras[1]["concise_answer/words"] == 80.0
    assert "concise_answer" not in extras[2]  # another data source: the entry does not apply
    assert metrics["reward/concise_answer/hit"] == 0.5
    assert metrics["reward/unmatched"] == 1.0
