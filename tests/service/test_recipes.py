"""Composite recipes: both forms parse to the same terms; every misconfiguration names the recipe."""

from __future__ import annotations

import pytest
from rewardserve.service.config import ServiceConfig
from rewardserve.service.recipes import CompositeSpec, CompositeTerm, parse_composites

M = ("hh=/m/hh", "toxicity=/m/tox", "hh-v2=/m/hh2")


def test_expression_and_tables_give_the_same_recipe():
    expr = CompositeSpec.parse("safe", "hh - 0.5*toxicity:toxic")
    table = CompositeSpec.parse("safe", [{"model": "hh"}, {"model": "toxicity", "weight": -0.5, "label": "toxic"}])
    assert expr == table
    assert expr.terms == (CompositeTerm("hh", 1.0, ""), CompositeTerm("toxicity", -0.5, "toxic"))
    assert expr.describe() == "hh - 0.5*toxicity:toxic"
    assert CompositeSpec.parse("safe", expr.describe()) == expr  # describe() round-trips


def test_signs_weights_and_dashed_model_names():
    spec = CompositeSpec.parse("r", "- 2 * hh-v2 + 0.25*toxicity:non_toxic - hh")
    assert spec.terms == (CompositeTerm("hh-v2", -2.0), CompositeTerm("toxicity", 0.25, "non_toxic"),
                          CompositeTerm("hh", -1.0))
    assert spec.models == ("hh-v2", "toxicity", "hh")


def test_flag_env_and_file_forms():
    flags = parse_composites(["a=hh - 0.5*toxicity:toxic", "b=toxicity:toxic"])
    env = parse_composites("a=hh - 0.5*toxicity:toxic,b=toxicity:toxic")
    table = parse_composites({"a": "hh - 0.5*toxicity:toxic", "b": [{"model": "toxicity", "label": "toxic"}]})
    assert flags == env == table and [c.name for c in flags] == ["a", "b"]


def test_config_takes_composites_from_every_source(tmp_path):
    toml = tmp_path / "serve.toml"
    toml.write_text('[models]\nhh = "/m/hh"\ntoxicity = "/m/tox"\n\n[composites]\n'
                    'safe = [{model = "hh"}, {model = "toxicity", weight = -0.5, label = "toxic"}]\n')
    from_file = ServiceConfig.from_sources({}, {}, toml)
    from_env = ServiceConfig.from_sources({}, {"REWARDSERVE_MODELS": "hh=/m/hh,toxicity=/m/tox",
                                                "REWARDSERVE_COMPOSITES": "safe=hh - 0.5*toxicity:toxic"})
    assert from_file.composites == from_env.composites == (CompositeSpec.parse("safe", "hh - 0.5*toxicity:toxic"),)


@pytest.mark.parametrize(
    ("composites", "message"),
    [
        ({"safe": "hh - 0.5*tox:toxic"}, "composites: recipe 'safe': unknown model 'tox'"),
        ({"hh": "toxicity:toxic"}, "composites: recipe 'hh': name clashes with a served model"),
        (["a=hh", "a=toxicity"], "composites: recipe 'a': defined twice"),
        ({"safe": ""}, "composites: recipe 'safe': no terms"),
        ({"safe": "hh -0.5*toxicity"}, "composites: recipe 'safe': term 'hh -0.5*toxicity': expected [WEIGHT*]MODEL"),
        ({"safe": "x*hh"}, "composites: recipe 'safe': term 'x*hh': expected [WEIGHT*]MODEL"),
        ({"safe": [{"model": "hh", "wieght": 2}]}, "composites: recipe 'safe': term 0: unknown key 'wieght'"),
        ({"safe": [{"weight": 2}]}, "composites: recipe 'safe': term 0: expected a table with 'model'"),
        ({"safe": "hh - inf*toxicity"}, "composites: recipe 'safe': weight of 'toxicity' must be finite"),
        (["safe"], "composites: expected NAME=EXPRESSION, got 'safe'"),
        ({"safe": 3}, "composites: recipe 'safe': expected an expression or a list"),
    ],
)
def test_misconfigured_recipes_fail_naming_the_recipe(composites, message):
    with pytest.raises(ValueError) as e:
        ServiceConfig(models=M, composites=composites)
    assert message in str(e.value)


def test_http_settings_are_validated():
    assert ServiceConfig(models=M).http_port is None  # off by default
    assert ServiceConfig(models=M, http_port="0", http_model="toxicity").http_port == 0
    assert ServiceConfig(models=M, composites={"safe": "hh"}, http_model="safe").http_model == "safe"
    with pytest.raises(ValueError, match="http_port must be in 0..65535"):
        ServiceConfig(models=M, http_port=70000)
    with pytest.raises(ValueError, match="http_model 'nope' is not a served model or composite"):
        ServiceConfig(models=M, http_model="nope")
