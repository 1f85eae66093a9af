"""One set of client flag names across score, filter and health; the old spellings still work, with a warning."""

from __future__ import annotations

import pytest
from rewardserve.service.cli.score import _where

from rewardserve.cli import CLIError, build_parser


def parse(*argv):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command", [("score", "in.jsonl"), ("filter", "in.jsonl"), ("health",)])
def test_every_client_command_takes_address_and_the_security_flags(command):
    args = parse(*command, "--address", "h:1", "--tls-ca-file", "ca.pem", "--token-file", "t")
    assert (args.address, args.tls_ca_file, args.token_file) == ("h:1", "ca.pem", "t")


def test_deprecated_spellings_warn_and_map_to_the_new_flags(capsys, tmp_path):
    args = parse("score", "in.jsonl", "--server", "h:1", "--model-name", "hh")
    assert (args.address, args.model) == ("h:1", "hh")
    err = capsys.readouterr().err
    assert "--server is deprecated, use --address" in err and "--model-name is deprecated, use --model" in err
    args = parse("score", "in.jsonl", "--model", str(tmp_path))  # the old in-process form
    _where(args)
    assert (args.bundle, args.model) == (tmp_path, "")
    assert "`score --model DIR` is deprecated, use --bundle DIR" in capsys.readouterr().err


def test_score_needs_exactly_one_of_address_and_bundle(tmp_path):
    with pytest.raises(CLIError, match="exactly one of --address"):
        _where(parse("score", "in.jsonl"))
    with pytest.raises(CLIError, match="exactly one of --address"):
        _where(parse("score", "in.jsonl", "--address", "h:1", "--bundle", str(tmp_path)))
    args = parse("score", "in.jsonl", "--address", "h:1", "--model", "hh")  # a name, not a directory
    _where(args)
    assert (args.address, args.model, args.bundle) == ("h:1", "hh", None)
