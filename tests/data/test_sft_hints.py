from rlsys.data.loading import HINT_PREFIX, hint_sft_rows


def _rows(n: int) -> list[dict]:
    return [
        {"id": f"r{i}", "prompt": f"Work out {i} + 1.", "response": f"\\boxed{{{i + 1}}}",
         "hints": [f"h{i}-L{level}" for level in range(1, 6)]}
        for i in range(n)
    ]


def test_share_zero_and_one():
    rows = _rows(20)
    none, n_none = hint_sft_rows(rows, 0.0, seed=1)
    assert n_none == 0 and [r["prompt"] for r in none] == [r["prompt"] for r in rows]
    assert all("hints" not in r and "hint_level" not in r for r in none)
    every, n_every = hint_sft_rows(rows, 1.0, seed=1)
    assert n_every == 20
    for r, src in zip(every, rows):
        # The RL prompt's format: the query, the prefix, the hint of the chosen level.
        assert r["prompt"] == src["prompt"] + HINT_PREFIX + src["hints"][r["hint_level"] - 1]
    assert {r["hint_level"] for r in every} <= {1, 2, 3, 4, 5}
    assert "hints" in rows[0], "the input rows are not changed"


def test_the_share_is_about_right_and_levels_are_spread():
    out, hinted = hint_sft_rows(_rows(2000), 0.3, seed=7)
    assert 0.26 * 2000 < hinted < 0.34 * 2000
    levels = [r["hint_level"] for r in out if "hint_level" in r]
    assert all(levels.count(level) > 0.12 * hinted for level in range(1, 6))


def test_choice_depends_on_row_id_and_seed_not_on_order():
    rows = _rows(200)
    a, _ = hint_sft_rows(rows, 0.5, seed=3)
    b, _ = hint_sft_rows(list(reversed(rows)), 0.5, seed=3)
    assert {r["id"]: r["prompt"] for r in a} == {r["id"]: r["prompt"] for r in b}
    c, _ = hint_sft_rows(rows, 0.5, seed=4)
    assert [r["prompt"] for r in a] != [r["prompt"] for r in c]


def test_rows_without_hints_and_chat_rows():
    plain = {"id": "p", "prompt": "Say hi.", "response": "hi"}
    chat = {"id": "c", "response": "x", "hints": ["one"],
            "messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
                         {"role": "user", "content": "second"}, {"role": "assistant", "content": "b"}]}
    out, hinted = hint_sft_rows([plain, chat], 1.0, seed=0)
    assert hinted == 1 and out[0] == plain
    assert out[1]["messages"][2]["content"] == "second" + HINT_PREFIX + "one"
    assert out[1]["messages"][0]["content"] == "first" and chat["messages"][2]["content"] == "second"
