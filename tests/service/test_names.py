"""model_aliases and http_strip: parsed from flags, env and config files, checked against served names."""

from __future__ import annotations

import pytest
from rewardserve.service.config import ServiceConfig


def test_aliases_and_strip_from_a_toml_file_and_flags(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text('models = {hh = "/x", tox = "/y"}\n[model_aliases]\n"/models/Skywork-RM" = "hh"\n'
                      '[http_strip]\nhh = ["</s>", "<|im_end|>"]\n')
    c = ServiceConfig.from_sources({"model_aliases": ["rm=tox"], "http_strip": ["tox=<pad>"]}, {}, config)
    assert c.model_aliases == (("rm", "tox"),)  # flags win over the file, as for every setting
    c = ServiceConfig.from_sources({}, {"REWARDSERVE_MODEL_ALIASES": "a=hh,b=tox"}, config)
    assert c.model_aliases == (("a", "hh"), ("b", "tox"))
    assert c.http_strip == (("hh", ("</s>", "<|im_end|>")),)


@pytest.mark.parametrize("values, message", [
    ({"model_aliases": ["rm=nope"]}, "model_aliases: 'rm' -> 'nope', which is not a served model"),
    ({"model_aliases": ["hh=hh"]}, "model_aliases: 'hh' is already a served model"),
    ({"model_aliases": ["just-a-name"]}, "model_aliases: expected ALIAS=NAME"),
    ({"http_strip": ["nope=</s>"]}, "http_strip: 'nope' is not a served model"),
])
def test_bad_names_are_refused_naming_the_setting(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ServiceConfig.from_sources({"models": ["hh=/x"], **values})
