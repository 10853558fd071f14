import pytest

from hints.progressive import HintSource
from hints.reference import ReferenceHints

ROW = {"id": "if-1", "data_source": "rlsys/ifeval", "response": "one two three four five six seven"}


def test_levels_show_a_growing_prefix_then_the_whole_reference():
    gen = ReferenceHints(max_level=5)
    # 7 words: ceil(7 * k / 5) = 2, 3, 5, 6 words at levels 1-4.
    assert gen(ROW, 1) == "a response that follows every instruction begins:\none two"
    assert gen(ROW, 2).endswith("begins:\none two three")
    assert gen(ROW, 3).endswith("begins:\none two three four five")
    assert gen(ROW, 4).endswith("begins:\none two three four five six")
    assert gen(ROW, 5) == "a response that follows every instruction:\none two three four five six seven"
    assert ReferenceHints(max_level=2, field="gold")({"gold": "a b c"}, 1).endswith("begins:\na b")


def test_a_row_without_reference_fails_naming_it():
    with pytest.raises(ValueError, match="row 'if-2' has no reference 'response'"):
        ReferenceHints()({"id": "if-2", "response": "  "}, 1)
    with pytest.raises(ValueError, match="max_level"):
        ReferenceHints(max_level=0)


def test_hint_source_offers_hints_only_on_its_data_sources():
    src = HintSource(ReferenceHints(), data_sources=["rlsys/ifeval"])
    math_row = {"id": "m-1", "data_source": "rlsys/math", "hints": ["h1"]}
    assert src.available(ROW) and not src.available(math_row)
    assert HintSource(ReferenceHints()).available(math_row)
    assert src.hint(ROW, 5).endswith(ROW["response"])
