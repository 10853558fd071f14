"""The pairwise judge's fixed format, its verdict parser, its RL rewards, and the judge as a reward over an
OpenAI-compatible endpoint (a stdlib stand-in server that prefers the response containing "good")."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rewards.pairwise_judge import (
    PairwiseJudgeReward,
    format_ok,
    judge_format_reward,
    judge_outcome_reward,
    judge_prompt,
    judge_target,
    parse_verdict,
)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Better: A", "A"),
        ("<think>\nA ends with 4. B ends with 5.\n</think>\nBetter: B", "B"),
        ("better: **B**", "B"),
        ("Better response: A.", "A"),
        ("The better one is: Response B", "B"),
        ("BETTER = A", "A"),
        ("Better: A\nOn reflection, Better: B", "B"),
        ("[[A]]", "A"),
        ("I compared them.\nB", "B"),
        ("I compared them.\n**Response A**", "A"),
        ("<think>Better: A", None),
        ("<think>Better: A</think>\nI cannot tell.", None),
        ("It would be better a lot of the time.", None),
        ("", None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


def test_fixed_format_is_checked_strictly():
    assert format_ok("<think>\nA ends with 4.\n</think>\nBetter: A", think=True)
    assert not format_ok("<think>\nA ends with 4.\n</think>\nBetter: A", think=False)
    assert format_ok("Better: B", think=False) and not format_ok("Better: B", think=True)
    assert format_ok("Better: B", think=None) and format_ok("<think>x</think>Better: A", think=None)
    for bad in ("Better: C", "better: A", "Better: A because", "<think></think>\nBetter: A",
                "<think>a<think>b</think>Better: A", "Better: A\nBetter: B"):
        assert not format_ok(bad, think=None), bad
    assert judge_format_reward("p", "Better: A", think=False) == {"score": 1.0}


def test_outcome_reward_scores_the_pick_against_the_label():
    assert judge_outcome_reward("p", "<think>x</think>\nBetter: B", label="B") == {
        "score": 1.0, "parsed": 1.0, "picked_a": 0.0}
    assert judge_outcome_reward("p", "Better: A", label="B")["score"] == 0.0
    assert judge_outcome_reward("p", "no verdict", label="A") == {"score": 0.0, "parsed": 0.0, "picked_a": 0.0}
    with pytest.raises(ValueError, match="row field 'label'"):
        judge_outcome_reward("p", "Better: A")


def test_targets_round_trip_and_prompt_holds_both_responses():
    for think in (True, False):
        for label in ("A", "B"):
            target = judge_target(label, "A ends with 1. B ends with 2.", think)
            assert parse_verdict(target) == label and format_ok(target, think)
    prompt = judge_prompt("What is 2 + 2?", "four", "five", think=False)
    assert prompt.index("Response A:\nfour") < prompt.index("Response B:\nfive")
    assert prompt.endswith("Finish with one line: Better: A or Better: B.")
    with pytest.raises(ValueError):
        judge_target("C")


class _Judge(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions: prefers the response that contains "good", else says A."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        n = body.get("n") or 1
        assert n == 1 or body["temperature"] > 0, "sampled checks must not be greedy"
        if text.startswith("Request:"):
            # A pointwise check: one failed mark per "bad" in the response, one more on even-numbered
            # choices of a "flaky" one (its greedy check, choice 0, fails it).
            response = text.split("Response:\n")[1].split("\n\nCheck the response")[0]
            verdicts = ["garbled" if "unparseable" in response or ("patchy" in response and i % 2) else "\n".join(
                ["title: ok."] + [f"rule {j}: no." for j in range(response.count("bad") + ("flaky" in response and i % 2 == 0))])
                for i in range(n)]
        else:
            a = text.split("Response A:\n")[1].split("\n\nResponse B:")[0]
            verdicts = ["garbled" if "unparseable" in text else ("Better: A" if "good" in a else
                                                                "Better: B" if "good" in text.split("Response B:")[1] else "Better: A")]
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": i, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": f"<think>ok</think>\n{v}"}}
                             for i, v in enumerate(verdicts)],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_served_judge_scores_completions_against_the_reference_in_both_orders(judge_url):
    reward = PairwiseJudgeReward(base_url=judge_url, model="judge", think=True)
    out = reward.score_batch(
        ["q1", "q2", "q3", "q4", "q5"],
        ["a good answer", "a weak answer", "<think>hmm</think>also weak", "unparseable", "anything"],
        [{"response": "a weak reference"}, {"response": "a good reference"}, {"response": "weak too"},
         {"response": "r"}, {}],
    )
    assert out[0]["score"] == 1.0          # judged better as A and as B
    assert out[1]["score"] == 0.0          # the reference wins both orders
    assert out[2]["score"] == 0.5          # no preference: the stand-in says A both times
    assert out[3] == {"score": 0.0, "no_reference": 0.0, "parse_error": 1.0, "judge_error": 0.0, "fallback": 1.0}
    assert out[4] == {"score": 0.0, "no_reference": 1.0, "parse_error": 0.0, "judge_error": 0.0, "fallback": 1.0}
    assert out[0]["fallback"] == 0.0 and out[0]["judge_error"] == 0.0
    single = PairwiseJudgeReward(base_url=judge_url, model="judge", both_orders=False)
    assert single("q", "a good answer", response="plain")["score"] == 1.0


def test_served_pointwise_checker_compares_failed_marks_with_the_reference(judge_url):
    reward = PairwiseJudgeReward(base_url=judge_url, model="checker", mode="pointwise")
    out = reward.score_batch(["q"] * 4, ["fine", "one bad", "fine", "unparseable"],
                             [{"response": "a bad one"}, {"response": "fine"}, {"response": "fine"}, {"response": "ok"}])
    assert [o["score"] for o in out[:3]] == [1.0, 0.0, 0.5]
    assert out[3] == {"score": 0.0, "no_reference": 0.0, "parse_error": 1.0, "unread_checks": 1.0,
                      "judge_error": 0.0, "fallback": 1.0}
    with pytest.raises(ValueError, match="mode must be one of"):
        PairwiseJudgeReward(base_url=judge_url, model="checker", mode="pointless")


def test_pointwise_votes_compare_mean_failed_marks_over_sampled_checks(judge_url):
    """"flaky" fails 1 mark on choices 0, 2, ... and none on 1, 3, ...: greedy it ties a one-fail reference
    (0.5); with 4 votes its mean, 0.5, beats the reference's 1.0, and loses to a clean reference."""
    greedy = PairwiseJudgeReward(base_url=judge_url, model="checker", mode="pointwise")
    voted = PairwiseJudgeReward(base_url=judge_url, model="checker", mode="pointwise", votes=4)
    assert greedy("q", "flaky", response="one bad")["score"] == 0.5
    assert voted("q", "flaky", response="one bad")["score"] == 1.0
    assert voted("q", "flaky", response="fine")["score"] == 0.0
    assert voted("q", "unparseable", response="fine") == {"score": 0.0, "no_reference": 0.0, "parse_error": 1.0,
                                                          "unread_checks": 1.0, "judge_error": 0.0,
                                                          "fallback": 1.0}
    # "patchy" garbles choices 1 and 3: its mean is over the two readable checks (0 fails, a tie with "fine"),
    # and the two left out are counted.
    assert voted("q", "patchy", response="fine") == {"score": 0.5, "no_reference": 0.0, "parse_error": 0.0,
                                                     "unread_checks": 0.5, "judge_error": 0.0, "fallback": 0.0}
    with pytest.raises(ValueError, match="votes must be an int >= 1"):
        PairwiseJudgeReward(base_url=judge_url, model="checker", mode="pointwise", votes=0)
    with pytest.raises(ValueError, match="votes > 1 needs mode: pointwise"):
        PairwiseJudgeReward(base_url=judge_url, model="judge", votes=4)
    with pytest.raises(ValueError, match="vote_temperature > 0"):
        PairwiseJudgeReward(base_url=judge_url, model="checker", mode="pointwise", votes=4, vote_temperature=0.0)


def test_check_prompt_splits_back_into_request_and_response():
    from rewards.pairwise_judge import check_prompt, split_check_prompt

    assert split_check_prompt(check_prompt(" Say hi.\nIn caps. ", "HI\n\nResponse:\nthere")) == (
        "Say hi.\nIn caps.", "HI\n\nResponse:\nthere")
    with pytest.raises(ValueError, match="not a check prompt"):
        split_check_prompt("Response A:\nx")


def test_judge_settings_are_checked_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="exactly one of model_path"):
        PairwiseJudgeReward()
    with pytest.raises(ValueError, match="has no config.json"):
        PairwiseJudgeReward.validate_static({"model_path": str(tmp_path)})
    with pytest.raises(ValueError, match="needs model"):
        PairwiseJudgeReward(base_url="http://127.0.0.1:1/v1")


def test_pointwise_marks_parse_and_compare():
    from rewards.pairwise_judge import check_preference, check_target, parse_marks

    tags = ["keyword include melody", "all uppercase", "title", "no commas"]
    text = "keyword include melody: no.\nall uppercase: ok.\ntitle: maybe.\nkeyword include melody: ok."
    # The first line for a tag counts; an unreadable or missing mark is None.
    assert parse_marks(text, tags) == ["no", "ok", None, None]
    assert parse_marks(check_target(tags, ["ok", "no", "ok", "ok"]), tags) == ["ok", "no", "ok", "ok"]
    assert check_preference(["ok", "no"], ["ok", "ok"]) == "B"
    assert check_preference([None, "ok"], ["no", "ok"]) == "A"
    assert check_preference(["no", None], ["ok", "no"]) is None


def test_check_marks_reward_scores_the_verdict_the_share_of_marks_or_all_marks():
    from rewards.pairwise_judge import check_marks_reward

    tags, marks = ["title", "no commas", "all uppercase"], ["ok", "no", "ok"]
    # One of three marks right, one tag without a readable mark; it fails the response, as the target does.
    wrong_marks = "title: no.\nno commas: no.\nall uppercase: yes."
    assert check_marks_reward("p", wrong_marks, tags=tags, marks=marks) == \
        {"score": 1.0, "verdict_right": 1.0, "marks_right": 1 / 3, "exact_right": 0.0, "balanced_right": 0.5,
         "parsed": 2 / 3}
    # Always "ok": two of three marks right, but the response passes where it should fail.
    all_ok = "title: ok.\nno commas: ok.\nall uppercase: ok."
    assert check_marks_reward("p", all_ok, tags=tags, marks=marks)["score"] == 0.0
    assert check_marks_reward("p", all_ok, tags=tags, marks=marks, score_by="marks")["score"] == 2 / 3
    assert check_marks_reward("p", all_ok, tags=tags, marks=marks, score_by="exact")["score"] == 0.0
    right = "title: ok.\nno commas: no.\nall uppercase: ok."
    assert check_marks_reward("p", right, tags=tags, marks=marks, score_by="exact")["score"] == 1.0
    # Balanced: the failure caught (1/1) and the passes (2/2) count as two halves.
    assert check_marks_reward("p", right, tags=tags, marks=marks, score_by="balanced")["score"] == 1.0
    assert check_marks_reward("p", all_ok, tags=tags, marks=marks, score_by="balanced")["score"] == 0.5
    one_pass = "title: ok.\nno commas: no.\nall uppercase: no."
    assert check_marks_reward("p", one_pass, tags=tags, marks=marks, score_by="balanced")["score"] == 0.75
    # An all-pass target has one class: a spurious failure costs its share of the passes.
    assert check_marks_reward("p", "title: ok.\nno commas: no.", tags=tags[:2], marks=["ok", "ok"],
                              score_by="balanced")["score"] == 0.5
    with pytest.raises(ValueError, match="'tags' and 'marks'"):
        check_marks_reward("p", "x", tags=["title"], marks=None)
    with pytest.raises(ValueError, match="score_by"):
        check_marks_reward("p", "x", tags=tags, marks=marks, score_by="vibes")
