import pytest

from rewards.length import length_penalty


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [(0, 0.0), (60, 0.0), (61, -0.025), (70, -0.25), (80, -0.5), (100, -1.0), (101, -1.0), (5000, -1.0)],
)
def test_penalty_from_token_count(tokens: int, expected: float) -> None:
    out = length_penalty("p", "ignored text", completion_tokens=tokens, max_len=100, buffer=40)
    assert out["score"] == pytest.approx(expected)
    assert out["length"] == tokens


def test_penalty_falls_back_to_word_count() -> None:
    assert length_penalty("p", "a b c d e f", max_len=8, buffer=4)["score"] == pytest.approx(-0.5)
    assert length_penalty("p", "a b c d", max_len=8, buffer=4)["score"] == 0.0
    assert length_penalty("p", "w " * 9, max_len=8, buffer=4)["score"] == -1.0


def test_invalid_buffer() -> None:
    with pytest.raises(ValueError, match="buffer"):
        length_penalty("p", "x", max_len=10, buffer=11)
    with pytest.raises(ValueError, match="buffer"):
        length_penalty("p", "x", max_len=10, buffer=0)
