"""Composite rewards over gRPC: total = weighted sum of the solo scores, parts, listing, Compare, errors."""

from __future__ import annotations

import math

import pytest
from rewardserve.service import domain
from rewardserve.service.client import RewardClient
from rewardserve.service.client import convert as client_convert
from rewardserve.service.domain import RewardPart
from rewardserve.service.edge import convert as edge_convert
from rewardserve.service.engine.models import ModelRegistry
from rewardserve.service.metrics import ServiceMetrics
from rewardserve.service.recipes import CompositeTerm

from rewardserve.cli import main

from .conftest import NORMALIZATION, ServerThread, make_config

pytestmark = pytest.mark.e2e

TEXTS = ["a calm and helpful reply", "you are an idiot", "a longer answer that goes on " * 4, "ok"]
RECIPE = "pairwise - 0.5*classifier:toxic + 2*classifier"


@pytest.fixture(scope="module")
def composite_server(bundles):
    s = ServerThread(make_config(bundles, names=("pairwise", "classifier"), composites={"mix": RECIPE}))
    yield s
    s.stop()


def sample(server: ServerThread, name: str, **labels) -> float:
    return server.server.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("normalize", [False, True])
def test_total_is_the_weighted_sum_of_solo_scores(composite_server, normalize):
    items_before = {m: sample(composite_server, "rewardserve_items_total", model=m) for m in ("pairwise", "classifier")}
    with RewardClient(composite_server.target) as client:
        result = client.score(TEXTS, model="mix", normalize=normalize)
        assert result.model == "mix"
        # Each text alone, each model alone: batches of one, nothing shared with the composite call.
        hh = [client.score([t], model="pairwise", normalize=normalize).scores[0] for t in TEXTS]
        clf = [client.score([t], model="classifier").scores[0] for t in TEXTS]
    for s, h, c in zip(result.scores, hh, clf, strict=True):
        expected = h.reward - 0.5 * c.probabilities[0] + 2 * c.reward
        assert s.reward == pytest.approx(expected, abs=1e-5)
        assert [(p.model, p.label, p.weight) for p in s.parts] == [
            ("pairwise", "", 1.0), ("classifier", "toxic", -0.5), ("classifier", "", 2.0)]
        assert [p.value for p in s.parts] == pytest.approx([h.reward, c.probabilities[0], c.reward], abs=1e-5)
        assert s.logits == () and s.probabilities == ()
        assert s.num_tokens == max(h.num_tokens, c.num_tokens) and s.truncated == (h.truncated or c.truncated)
    if normalize:  # the pairwise part was standardised (the classifier has no statistics to use)
        assert result.scores[0].parts[0].value == pytest.approx(
            (hh[0].logits[0] - NORMALIZATION.mean) / NORMALIZATION.std, abs=1e-5)
    # Both models' batchers scored the composite's items (4 each), besides the 4 solo calls each.
    for m in ("pairwise", "classifier"):
        assert sample(composite_server, "rewardserve_items_total", model=m) - items_before[m] == 2 * len(TEXTS)
    assert sample(composite_server, "rewardserve_requests_total", method="Score", model="mix", code="OK") >= 1


def test_listed_as_kind_composite_with_its_terms(composite_server):
    with RewardClient(composite_server.target) as client:
        listing = client.list_models()
        info = client.get_model("mix")
    assert [m.name for m in listing.models] == ["pairwise", "classifier", "mix"] and listing.default == "pairwise"
    assert listing.models[2] == info
    assert info.kind == "composite" and info.labels == () and info.max_length == 64
    assert info.terms == (CompositeTerm("pairwise", 1.0, ""), CompositeTerm("classifier", -0.5, "toxic"),
                          CompositeTerm("classifier", 2.0, ""))


def test_compare_puts_the_totals_in_bradley_terry(composite_server):
    with RewardClient(composite_server.target) as client:
        cmp = client.compare("\n\nHuman: hi", [("\n\nAssistant: hello!", "\n\nAssistant: go away")], model="mix")
    c = cmp.comparisons[0]
    assert c.prob_a_preferred == pytest.approx(1 / (1 + math.exp(-(c.reward_a - c.reward_b))), abs=1e-6)


def test_bad_items_are_named_like_direct_requests(composite_server):
    from rewardserve.service.client import RewardServiceError

    with RewardClient(composite_server.target) as client, pytest.raises(RewardServiceError) as e:
        client.score(["fine", ""], model="mix")
    assert e.value.code.name == "INVALID_ARGUMENT" and "items[1].text: empty" in e.value.details


def test_a_label_the_model_lacks_fails_at_load_naming_the_recipe(bundles):
    config = make_config(bundles, names=("pairwise", "classifier"), composites={"safe": "pairwise - classifier:hate"})
    with pytest.raises(ValueError) as e:
        ModelRegistry.load(config, ServiceMetrics(), warm_up=False)
    assert str(e.value) == ("composites: recipe 'safe': model 'classifier' has no label 'hate' "
                            "(labels: ['toxic', 'non_toxic'])")


def test_serve_flags_refuse_bad_recipes_with_the_documented_message(bundles, capsys):
    base = ["serve", "--model", f"clf={bundles['classifier']}", "--port", "0", "--metrics-port", "off",
            "--precision", "fp32"]
    assert main([*base, "--composite", "safe=clf - 0.5*tox:toxic"]) != 0
    assert "composites: recipe 'safe': unknown model 'tox'" in capsys.readouterr().err
    assert main([*base, "--composite", "clf=clf:toxic"]) != 0
    assert "composites: recipe 'clf': name clashes with a served model" in capsys.readouterr().err
    assert main([*base, "--composite", "safe=clf:nontoxic"]) != 0  # found once the bundle is loaded
    assert "composites: recipe 'safe': model 'clf' has no label 'nontoxic'" in capsys.readouterr().err


def test_parts_round_trip_through_the_wire_types():

    score = domain.ItemScore((), (), 0.25, 9, True, (RewardPart("hh", "", 1.0, 0.5), RewardPart("t", "toxic", -0.5, 0.5)))
    back = client_convert.score_result_from_pb(edge_convert.score_result_to_pb(domain.ScoreResult((score,), "mix"))).scores[0]
    assert back == score
