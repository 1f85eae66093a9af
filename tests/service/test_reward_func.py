"""``RewardClient.as_reward_func``: TRL's reward-function call shape, one request per call, penalties."""

from __future__ import annotations

import pytest
from rewardserve.service.client import RewardClient

pytestmark = pytest.mark.e2e

PROMPTS = ["How do I bake bread?", "Tell me a joke.", "What is the capital of France?"]
COMPLETIONS = ["Mix flour and water, then bake.", "Why did the chicken cross the road?", "Paris."]
CHAT_PROMPTS = [[{"role": "system", "content": "Be kind."}, {"role": "user", "content": p}] for p in PROMPTS]
CHAT_COMPLETIONS = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]


def _requests(server, model: str) -> float:
    value = server.server.metrics.registry.get_sample_value(
        "rewardserve_requests_total", {"method": "Score", "model": model, "code": "OK"})
    return value or 0.0


@pytest.fixture(scope="module")
def client(server):
    with RewardClient(server.target, timeout_s=10) as c:
        yield c


def _trl_kwargs() -> dict:
    """Extra keyword arguments as GRPOTrainer._calculate_rewards passes them."""
    return {"completion_ids": [[1, 2]] * 3, "trainer_state": None, "log_extra": lambda *a: None,
            "answer": ["x", "y", "z"]}


def test_standard_format_matches_score_in_one_request(server, client):
    reward = client.as_reward_func(normalize=True)
    expected = [s.reward for s in client.score(list(zip(PROMPTS, COMPLETIONS, strict=True)), normalize=True).scores]
    before = _requests(server, "pairwise")
    got = reward(prompts=PROMPTS, completions=COMPLETIONS, **_trl_kwargs())
    assert _requests(server, "pairwise") - before == 1
    assert got == pytest.approx(expected, abs=1e-6)
    assert len(set(got)) == 3  # distinct texts, distinct rewards: the order is checked, not a constant
    assert reward.__name__ == "rewardserve_default"


def test_conversational_format_matches_score(server, client):
    from trl.trainer.utils import get_callable_name

    reward = client.as_reward_func(model="gpt2", name="helpful")
    conversations = [p + c for p, c in zip(CHAT_PROMPTS, CHAT_COMPLETIONS, strict=True)]
    expected = [s.reward for s in client.score(conversations, model="gpt2").scores]
    before = _requests(server, "gpt2")
    got = reward(CHAT_PROMPTS, CHAT_COMPLETIONS, **_trl_kwargs())
    assert _requests(server, "gpt2") - before == 1
    assert got == pytest.approx(expected, abs=1e-6)
    # standard-format scores of the same texts differ: the conversation really went as messages
    assert got != pytest.approx(client.as_reward_func(model="gpt2")(PROMPTS, COMPLETIONS), abs=1e-6)
    assert get_callable_name(reward) == "helpful"  # what TRL logs it under


@pytest.mark.parametrize("label", ["toxic", None])
def test_penalty_composition(server, client, label):
    logged = {}
    reward = client.as_reward_func(model="pairwise", penalty_model="classifier", penalty_label=label,
                                   penalty_weight=0.5)
    base = [s.reward for s in client.score(list(zip(PROMPTS, COMPLETIONS, strict=True))).scores]
    p_toxic = [s.probabilities[0] for s in client.score(COMPLETIONS, model="classifier").scores]  # labels: toxic, non_toxic
    before = (_requests(server, "pairwise"), _requests(server, "classifier"))
    got = reward(PROMPTS, COMPLETIONS, log_metric=lambda k, v: logged.update({k: v}))
    assert (_requests(server, "pairwise") - before[0], _requests(server, "classifier") - before[1]) == (1, 1)
    assert got == pytest.approx([r - 0.5 * p for r, p in zip(base, p_toxic, strict=True)], abs=1e-6)
    assert logged == {"rewardserve_pairwise_minus_classifier/penalty_prob": pytest.approx(sum(p_toxic) / 3)}
    reward.close()


def test_empty_completions_are_not_sent(server, client):
    reward = client.as_reward_func(empty_reward=-5.0)
    before = _requests(server, "pairwise")
    got = reward(PROMPTS, ["", COMPLETIONS[1], ""])
    assert got[0] == got[2] == -5.0
    assert got[1] == pytest.approx(client.score([(PROMPTS[1], COMPLETIONS[1])]).scores[0].reward, abs=1e-6)
    assert _requests(server, "pairwise") - before == 2  # the call's one request, then the check's
    assert reward(PROMPTS[:1], [""]) == [-5.0]
    assert client.as_reward_func()(PROMPTS[:1], [[{"role": "assistant", "content": ""}]]) == [None]


def test_bad_uses_are_clear(client):
    with pytest.raises(ValueError, match="penalty_label needs penalty_model"):
        client.as_reward_func(penalty_label="toxic")
    with pytest.raises(ValueError, match="label 'nope' is not a label of 'classifier'"):
        client.as_reward_func(penalty_model="classifier", penalty_label="nope")(PROMPTS, COMPLETIONS)
    with pytest.raises(ValueError, match="model 'pairwise' is pairwise.*needs a classifier"):
        client.as_reward_func(model="gpt2", penalty_model="pairwise")(PROMPTS, COMPLETIONS)
    with pytest.raises(ValueError, match="3 prompts but 2 completions"):
        client.as_reward_func()(PROMPTS, COMPLETIONS[:2])
