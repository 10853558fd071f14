"""The OpenAI-compatible hint generator against a real HTTP server on loopback (the real openai client), and the
row validation of hints the data carries."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from rlsys_testing import ChatServer

from hints.progressive import HintSource
from rlsys.data.loading import load_rows, prompt_messages, sft_messages
from rlsys.data.schema import DataError
from rlsys.rl.hint_generator import HintGenerationError, OpenAIHintGenerator, parse_hints

WELL_FORMED = "Hint 1: notice {p}\nHint 2: split it\nHint 3: use a formula\nHint 4: first step\nHint 5: full\nsolution {p}"


class _Hinter(ChatServer):
    """Answers with five hints naming the problem; a problem holding "garble" gets a reply without level 4, one
    holding "flaky" a garbled reply on the first request only. `requests` lists the problems asked about."""

    def __init__(self) -> None:
        super().__init__(self._hints)
        self.requests: list[str] = []

    def _hints(self, text: str) -> str:
        problem = text.split("Problem:\n", 1)[1].split("\n\nReference solution:", 1)[0]
        with self.lock:
            self.requests.append(problem)
            first = self.requests.count(problem) == 1
        reply = WELL_FORMED.format(p=problem)
        if "garble" in problem or ("flaky" in problem and first):
            reply = reply.replace("Hint 4: first step\n", "")
        return reply


@pytest.fixture
def server():
    srv = _Hinter()
    with srv as url:
        srv.url = url
        yield srv


def _gen(url: str, **kw) -> OpenAIHintGenerator:
    return OpenAIHintGenerator(base_url=url, model="hinter", backoff_base_s=0.0, timeout_s=5.0, **kw)


def test_parse_hints() -> None:
    assert parse_hints(WELL_FORMED.format(p="x")) == ["notice x", "split it", "use a formula", "first step",
                                                      "full\nsolution x"]
    assert parse_hints("**Hint 1:** a\nhint 2: b\nHint 3 : c\nHint 4: d\nHint 5: e") == ["a", "b", "c", "d", "e"]
    for text, why in [("Hint 1: a\nHint 2: b\nHint 3: c\nHint 5: e", "level 4 is missing"),
                      ("Hint 1: a\nHint 2:\nHint 3: c\nHint 4: d\nHint 5: e", "level 2 is empty"),
                      ("Hint 1: a\nHint 1: b\nHint 3: c\nHint 4: d\nHint 5: e", "level 1 appears twice"),
                      ("Hint 2: b\nHint 1: a\nHint 3: c\nHint 4: d\nHint 5: e", "out of order"),
                      ("Hint 1: a\nHint 2: b\nHint 3: c\nHint 4: d\nHint 5: e\nHint 6: f", "level 6 is not"),
                      ("Sure! Here are some hints.", "level 1 is missing")]:
        with pytest.raises(ValueError, match=why):
            parse_hints(text)


def test_generator_serves_every_level_from_one_request_and_caches(server, tmp_path: Path) -> None:
    row = {"id": "r1", "prompt": "What is 2 + 3?", "solution": "2 + 3 = 5."}
    gen = _gen(server.url, cache_dir=str(tmp_path / "hints"))
    source = HintSource(gen)
    assert source.available({"id": "r9", "prompt": "q"})
    assert [source.hint(row, level) for level in range(1, 6)] == [
        "notice What is 2 + 3?", "split it", "use a formula", "first step", "full\nsolution What is 2 + 3?"]
    assert source.hint(row, 0) is None
    assert server.requests == ["What is 2 + 3?"]
    # The same problem under another id is the same cache entry; a fresh generator reads it from disk.
    assert gen({**row, "id": "r2"}, 2) == "split it"
    again = _gen(server.url, cache_dir=str(tmp_path / "hints"))
    assert again(row, 5) == "full\nsolution What is 2 + 3?"
    assert server.requests == ["What is 2 + 3?"]
    assert len(list((tmp_path / "hints").glob("*.json"))) == 1
    # Another solution is another problem: asked again.
    assert gen({**row, "solution": "5."}, 1) == "notice What is 2 + 3?" and len(server.requests) == 2
    with pytest.raises(ValueError, match="row 'r1': hint level must be in 1..5, got 6"):
        gen(row, 6)


def test_malformed_reply_is_retried_then_named(server) -> None:
    gen = _gen(server.url, max_retries=1)
    assert gen({"id": "f", "prompt": "a flaky one", "answer": "1"}, 4) == "first step"
    assert server.requests.count("a flaky one") == 2
    with pytest.raises(HintGenerationError, match=r"row 'g': no hints after 2 attempts: malformed reply "
                                                  r"\(level 4 is missing\)"):
        gen({"id": "g", "prompt": "garble me", "answer": "1"}, 1)
    assert server.requests.count("garble me") == 2
    with pytest.raises(HintGenerationError, match=r"row 'n': none of the fields \['solution', 'response', 'answer'\]"):
        gen({"id": "n", "prompt": "no solution"}, 1)


def test_dead_server_fails_naming_the_row() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = _gen(f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(HintGenerationError, match=r"row 'd': no hints after 2 attempts: endpoint .* unreachable "
                                                  r"\(APIConnectionError\)"):
        gen({"id": "d", "prompt": "q", "solution": "s"}, 1)


def test_settings_are_checked(monkeypatch) -> None:
    monkeypatch.delenv("RLSYS_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="api_key_env: environment variable 'RLSYS_NO_SUCH_KEY' is not set"):
        OpenAIHintGenerator("http://127.0.0.1:1/v1", "m", api_key_env="RLSYS_NO_SUCH_KEY")
    with pytest.raises(ValueError, match=r"must contain \{problem\} and \{solution\}"):
        OpenAIHintGenerator("http://127.0.0.1:1/v1", "m", prompt_template="no fields")


def test_rows_with_malformed_hints_fail_naming_file_row_and_level(tmp_path: Path) -> None:
    good = {"id": "a", "prompt": "What is 1 + 1?", "answer": "2", "hints": ["h1", "h2", "h3", "h4", "h5"]}
    cases = [({**good, "hints": ["h1", "h2", " ", "h4", "h5"]}, "rows.jsonl row 2: field 'hints' level 3 must be a non-empty"),
             ({**good, "hints": ["h1", 7]}, "rows.jsonl row 2: field 'hints' level 2 must be a non-empty string, got 7"),
             ({**good, "hints": "h1"}, "rows.jsonl row 2: field 'hints' must be a list of at most 5"),
             ({**good, "hints": ["h"] * 6}, "rows.jsonl row 2: field 'hints' must be a list of at most 5")]
    for bad, message in cases:
        path = tmp_path / "rows.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(DataError) as err:
            load_rows([str(path)], "rl", "error")
        assert message in str(err.value)
    path.write_text(json.dumps(good) + "\n")
    assert load_rows([str(path)], "rl", "error")[0][0]["hints"] == good["hints"]


def test_hinted_sft_rows_render_as_rl_prompts_do() -> None:
    from rlsys.data.loading import hint_sft_rows
    from rlsys.data.tasks.suite import SuiteSpec, sft_rows

    rows, _ = hint_sft_rows(sft_rows(SuiteSpec(n_train_per_tier=40), [], []), 0.15, seed=0)
    hinted = [r for r in rows if "\n\nHint: " in r["prompt"]]
    assert 0 < len(hinted) < len(rows)
    for r in hinted:
        query, hint = r["prompt"].split("\n\nHint: ", 1)
        # The SFT user turn is exactly the RL prompt of the same query carrying the same hint.
        assert sft_messages(r)[0] == prompt_messages({"prompt": query}, hint=hint)[0]
