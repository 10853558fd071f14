"""Token-level credit from a step verifier, on hand-made token strings."""

import pytest
import torch

from rlsys.algorithms.credit import decode_with_char_ends, error_token_advantages, tokens_in_spans
from rlsys.algorithms.losses_rl import gspo_loss, gspo_token_loss

# A toy tokenizer: each id is a piece of text.
PIECES = ["3", " *", " 5", " =", " 2", "1", ".", "\n", "So", " 15", "<eos>"]


def decode(ids: list[int]) -> str:
    return "".join(PIECES[i] for i in ids if PIECES[i] != "<eos>")


def test_char_ends_and_overlap() -> None:
    ids = [0, 1, 2, 3, 4, 5, 6, 10]  # "3 * 5 = 21." then eos
    text, ends = decode_with_char_ends(decode, ids)
    assert ends == [1, 3, 5, 7, 9, 10, 11, 11]
    assert text == decode(ids) == "3 * 5 = 21."
    assert decode_with_char_ends(decode, []) == ("", [])
    start = text.index("21")
    # "21" is split over the tokens " 2" and "1"; the eos token covers no character.
    assert tokens_in_spans(ends, [(start, start + 2)]) == [False, False, False, False, True, True, False, False]


def test_negative_advantage_lands_on_false_result_only() -> None:
    ends = [1, 3, 5, 7, 9, 10, 11, 11]
    adv, localised = error_token_advantages(-1.5, tokens_in_spans(ends, [(8, 10)]))
    assert localised
    assert adv == [0.0, 0.0, 0.0, 0.0, -1.5, -1.5, 0.0, 0.0]


def test_positive_or_unlocated_answers_keep_their_sequence_advantage() -> None:
    ends = [1, 3, 5]
    assert error_token_advantages(0.7, tokens_in_spans(ends, [(2, 3)])) == ([0.7, 0.7, 0.7], False)
    assert error_token_advantages(-0.7, tokens_in_spans(ends, [])) == ([-0.7, -0.7, -0.7], False)


def test_step_penalty_also_marks_errors_in_all_fail_and_correct_answers() -> None:
    ends = [1, 3, 5]
    # All-fail group: the outcome advantage is 0, the penalty still names the wrong token.
    assert error_token_advantages(0.0, tokens_in_spans(ends, [(3, 5)]), step_penalty=0.25) == ([0.0, 0.0, -0.25], False)
    # A right answer with a false step: +A everywhere, A - beta on the false token.
    assert error_token_advantages(1.0, tokens_in_spans(ends, [(0, 1)]), step_penalty=0.25) == ([0.75, 1.0, 1.0], False)
    # A failed answer: the penalty adds to the localised negative advantage.
    assert error_token_advantages(-1.0, tokens_in_spans(ends, [(0, 1)]), step_penalty=0.25) == ([-1.25, 0.0, 0.0], True)
    with pytest.raises(ValueError, match="step_penalty"):
        error_token_advantages(0.0, tokens_in_spans(ends, []), step_penalty=-1.0)


def test_localised_credit_through_gspo_token_moves_only_the_error_token() -> None:
    """Gradient of GSPO-token with localised advantages: only the false-result token gets one.

    On-policy (old = current) s_i = 1 and, inside the clip range, the loss is
    −(1/|y|) Σ_t Â_t log π(y_t) + const, so d loss / d log π(y_t) = −Â_t / |y| = 1.5/4 on the false
    token and 0 on the others; with one advantage for all tokens it equals GSPO's gradient.
    """
    lp = torch.tensor([[-0.1, -0.2, -0.3, -0.4]], requires_grad=True)
    old = lp.detach().clone()
    mask = torch.ones(1, 4)
    adv, _ = error_token_advantages(-1.5, tokens_in_spans([1, 2, 3, 4], [(2, 3)]))
    loss, _ = gspo_token_loss(lp, old, torch.tensor([adv]), mask)
    (grad,) = torch.autograd.grad(loss, lp)
    assert torch.allclose(grad, torch.tensor([[0.0, 0.0, 1.5 / 4, 0.0]]))
    seq_adv, _ = error_token_advantages(-1.5, tokens_in_spans([1, 2, 3, 4], []))
    loss_t, _ = gspo_token_loss(lp, old, torch.tensor([seq_adv]), mask)
    loss_s, _ = gspo_loss(lp, old, torch.tensor([-1.5]), mask)
    (g_t,) = torch.autograd.grad(loss_t, lp)
    (g_s,) = torch.autograd.grad(loss_s, lp)
    assert torch.allclose(g_t, g_s)
