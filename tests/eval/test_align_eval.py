"""`python -m rlsys.eval align`: the judge's agreement on held-out soft checks, by hand."""

from __future__ import annotations

import pytest
from rlsys_testing import SoftJudgeServer

from rewards.alignment import AlignmentReward
from rlsys.eval.align import agreement

FORMAL = {"type": "tone", "params": {"variant": "formal"}, "instruction": "Keep a formal tone.", "rubric": "Formal."}
THANKS = {"type": "gratitude", "params": {"variant": "any"}, "instruction": "Thank the reader.", "rubric": "Thanks."}


def test_agreement_counts_marks_and_pairs_by_hand():
    """Reference "My pleasure. Thank you." (ok, ok). Variant 1 "Hey. Thank you." (no, ok); variant 2 "My pleasure,
    garble." gets no marks from the judge. Marks right: 2 + 2 + 0 of 6. Pairs: the reference (1.0) beats variant 1
    (0.5) and variant 2 (0.0): 2 of 2."""
    row = {"id": "r", "prompt": "Describe x.", "soft_constraints": [FORMAL, THANKS], "response": "My pleasure. Thank you.",
           "soft_variants": [{"response": "Hey. Thank you.", "marks": ["no", "ok"]},
                             {"response": "My pleasure, garble.", "marks": ["ok", "no"]}]}
    with SoftJudgeServer({"tone formal": "pleasure", "gratitude": "thank"}) as url:
        out = agreement(AlignmentReward(base_url=url, model="judge"), [row])
    assert out["mark_agreement"] == pytest.approx(4 / 6)
    assert out["pair_acc"] == 1.0 and out["pairs"] == 2.0 and out["fallback"] == 0.0


def test_the_command_needs_one_judge():
    from rlsys.eval.__main__ import main

    with pytest.raises(SystemExit, match="exactly one of --judge"):
        main(["align", "a=b"])
