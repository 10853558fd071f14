import pytest

from rewards.format import fenced_code_block, format_reward, markdown_structure, think_format_ok, valid_json

THINK_OK = "<think>Add the numbers.</think>The sum is 4."
NO_THINK_OK = "The sum is 4."


@pytest.mark.parametrize(
    ("mode", "prompt", "completion", "expected"),
    [
        ("think", "", THINK_OK, True),
        ("think", "", "  <think>\nstep\n</think>\n\nAnswer.", True),
        ("think", "<|im_start|>assistant\n<think>\n", "reasoning</think>Answer.", True),
        ("think", "", NO_THINK_OK, False),
        ("think", "", "<think>Add the numbers.</think>   ", False),
        ("think", "", "<think></think>Answer.", False),
        ("think", "", "<think>a</think>b</think>c", False),
        ("think", "", "<think>a<think>b</think>c", False),
        ("think", "", "Intro <think>a</think>b", False),
        ("think", "", "<think>never closed", False),
        ("no_think", "", NO_THINK_OK, True),
        ("no_think", "", THINK_OK, False),
        ("no_think", "", "Answer.</think>", False),
        ("no_think", "", "   ", False),
        ("auto", "", THINK_OK, True),
        ("auto", "", NO_THINK_OK, True),
        ("auto", "", "<think>never closed", False),
        ("auto", "", "text </think> more", False),
    ],
)
def test_think_format(mode: str, prompt: str, completion: str, expected: bool) -> None:
    assert think_format_ok(prompt, completion, mode) is expected
    assert format_reward(prompt, completion, mode=mode)["score"] == float(expected)


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        format_reward("", NO_THINK_OK, mode="maybe")


def test_valid_json() -> None:
    assert valid_json('{"a": [1, 2]}')
    assert valid_json('```json\n[{"a": 1}]\n```')
    assert not valid_json('{"a": 1')
    assert not valid_json("42")
    assert not valid_json('Here: {"a": 1}')


def test_markdown_structure() -> None:
    assert markdown_structure("# Plan\n\n- first\n- second\n")
    assert markdown_structure("## Steps\n1. one\n2) two")
    assert not markdown_structure("# Plan\n\nJust prose.")
    assert not markdown_structure("- a list\n- without heading")
    assert not markdown_structure("#NoSpace\n- item")


def test_fenced_code_block() -> None:
    code = "Use this:\n```python\nprint('hi')\n```\nDone."
    assert fenced_code_block(code)
    assert fenced_code_block(code, language="python")
    assert not fenced_code_block(code, language="rust")
    assert not fenced_code_block("```\n\n```")
    assert not fenced_code_block("inline `code` only")


def test_format_field_selects_a_content_checker() -> None:
    good = format_reward("", '<think>plan</think>{"x": 1}', mode="think", format="json")
    assert good == {"tags": 1.0, "json": 1.0, "score": 1.0}
    bad_content = format_reward("", "<think>plan</think>not json", mode="think", format="json")
    assert bad_content == {"tags": 1.0, "json": 0.0, "score": 0.0}
    bad_tags = format_reward("", "# T\n- a", mode="think", format="markdown")
    assert bad_tags == {"tags": 0.0, "markdown": 1.0, "score": 0.0}
    assert format_reward("", "```sh\nls\n```", mode="no_think", format="code")["score"] == 1.0
    with pytest.raises(ValueError, match="unknown format"):
        format_reward("", NO_THINK_OK, mode="no_think", format="yaml")
