"""Preference pairs as token sequences: the first-differing-line scope (Step-DPO) and its masks."""

from __future__ import annotations

import pytest

from rlsys.data.encode import encode_pairs, first_diff_line_ends

CHOSEN = "Ones: 9 + 4 = 13, write 3, carry 1.\nTens: 3 + 2 + 1 = 6.\nSo 39 + 24 = 63.\nThe answer is \\boxed{63}."
REJECTED = "Ones: 9 + 4 = 3, write 3.\nTens: 3 + 2 = 5.\nSo 39 + 24 = 53.\nThe answer is \\boxed{53}."


def test_first_diff_line_ends() -> None:
    # The very first line differs: each text ends its scored part after that line's newline.
    assert first_diff_line_ends(CHOSEN, REJECTED) == (len("Ones: 9 + 4 = 13, write 3, carry 1.\n"), len("Ones: 9 + 4 = 3, write 3.\n"))
    # Shared lines come first and stay in scope.
    a, b = "x = 1.\ny = 2.\nz = 3.", "x = 1.\ny = 5.\nz = 3."
    assert first_diff_line_ends(a, b) == (len("x = 1.\ny = 2.\n"), len("x = 1.\ny = 5.\n"))
    # Last line differs: the whole texts.
    assert first_diff_line_ends("a\nb", "a\nc") == (3, 3)
    # One text continues past the other: the shorter ends at its length, the longer after its next line.
    assert first_diff_line_ends("a\nb\n", "a\nb\nc\nd") == (4, 6)


def test_encode_pairs_first_diff_line_masks(tiny_model_dir: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    row = {"id": "p0", "prompt": "What is 39 + 24?", "chosen": CHOSEN, "rejected": REJECTED}
    [(full_c, full_r)] = encode_pairs(tok, [row], 512)
    [(c, r)] = encode_pairs(tok, [row], 512, scope="first_diff_line")
    assert len(full_c) == 2 and c[:2] == full_c and r[:2] == full_r  # same ids and loss masks
    end_c, end_r = first_diff_line_ends(CHOSEN, REJECTED)
    for (ids, mask, fields), text, end in ((c, CHOSEN, end_c), (r, REJECTED, end_r)):
        pref = fields["pref_mask"]
        assert len(pref) == len(ids)
        assert all(m >= p for m, p in zip(mask, pref))  # inside the response
        scored = [t for t, p in zip(ids, pref) if p]
        assert tok.decode(scored) == text[:end]  # exactly the first differing line, no end token
        assert pref.index(1) == mask.index(1)  # starts at the response's first token
    # A pair whose only difference is the last line is scored whole, end token included.
    last = dict(row, chosen="x = 1.\nSo 7.", rejected="x = 1.\nSo 8.")
    [(c, r)] = encode_pairs(tok, [last], 512, scope="first_diff_line")
    assert c[2]["pref_mask"] == c[1] and r[2]["pref_mask"] == r[1]
    with pytest.raises(ValueError, match="pair scope 'steps'"):
        encode_pairs(tok, [row], 512, scope="steps")
