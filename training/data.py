"""Loaders for every preference and classification format users bring (one import point).

Each loader returns plain dataclasses and raises :class:`DataError` naming file, line and
field for bad input. Texts are formatted once, with :mod:`rewardserve.formatting`, so training
sees exactly what the service will format at request time. The code lives in one module per
concern; this module re-exports the public names the rest of rewardserve imports:

* :mod:`~rewardserve.training.records`: reading JSONL/CSV/``hf:`` records, ``DataError``, ``LoadReport``;
* :mod:`~rewardserve.training.groups`: ``PreferenceGroup``, the unit of preference training;
* :mod:`~rewardserve.training.preferences`: pairs, HH dialogues, conversations, rankings;
* :mod:`~rewardserve.training.judgements` and :mod:`~rewardserve.training.consensus`: several
  labellers' judgements and the consensus that turns them into training pairs;
* :mod:`~rewardserve.training.classification`: labelled texts, label maps and vote columns.
"""

from __future__ import annotations

from rewardserve.training.classification import (
    LabelledText,
    class_names,
    load_classification,
    parse_label_map,
    parse_label_votes,
    parse_votes,
)
from rewardserve.training.groups import PreferenceGroup, flatten_pairs
from rewardserve.training.preferences import (
    HH_ASSISTANT,
    TextFormatter,
    load_preferences,
    ranking_to_pairs,
    split_dialogue_pair,
)
from rewardserve.training.records import DataError, LoadReport, fingerprint, parse_hf_source, read_records

__all__ = [
    "HH_ASSISTANT", "DataError", "LabelledText", "LoadReport", "PreferenceGroup", "TextFormatter",
    "class_names", "fingerprint", "flatten_pairs", "load_classification", "load_preferences",
    "parse_hf_source", "parse_label_map", "parse_label_votes", "parse_votes", "ranking_to_pairs",
    "read_records", "split_dialogue_pair",
]
