import pytest

from rewards.length import length_penalty, reference_length_penalty


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


# Reference of 10 words, ratio 1.5, slack 5: limit = 1.5 * 10 + 5 = 20 words.
@pytest.mark.parametrize(("words", "expected"), [(3, 0.0), (20, 0.0), (25, -0.25), (30, -0.5), (40, -1.0), (90, -1.0)])
def test_reference_length_penalty_by_hand(words: int, expected: float) -> None:
    out = reference_length_penalty("p", "w " * words, response="r " * 10, ratio=1.5, slack_words=5)
    assert out["score"] == pytest.approx(expected)
    assert out["words"] == words and out["no_reference"] == 0.0


def test_reference_length_penalty_without_reference_is_counted_not_penalised() -> None:
    out = reference_length_penalty("p", "w " * 500, response=None)
    assert out == {"score": 0.0, "no_reference": 1.0, "words": 500.0}
    with pytest.raises(ValueError, match="ratio=0"):
        reference_length_penalty("p", "x", response="y", ratio=0)
