"""Preference data: pairs, HH dialogues, conversations and K-way rankings as preference groups.

Formats (JSONL; one record per line):

* pairs with a prompt: ``{"prompt", "chosen", "rejected"}`` (optional ``margin``);
* whole dialogues, Anthropic HH style: ``{"chosen", "rejected"}``, split into the shared
  prompt and the two differing responses;
* conversations: ``chosen``/``rejected`` (and optionally ``prompt``) as lists of
  ``{"role", "content"}`` messages, rendered with the chat template;
* K-way rankings: ``{"prompt", "completions": [...], "ranks": [...]}`` (1 = best, ties
  allowed), which become every pair of differently ranked completions;
* several labellers' judgements (rankings with ``rankings``, pairs with ``votes`` or one line
  per ``labeller``): see :mod:`rewardserve.training.judgements`, turned into pairs by
  :mod:`rewardserve.training.consensus`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardserve.training.consensus import consensus_groups
from rewardserve.training.groups import PreferenceGroup
from rewardserve.training.judgements import (
    JudgementCollector,
    is_judgement_record,
    pair_judgements,
    ranking_judgements,
)
from rewardserve.training.records import DataError, LoadReport, read_records
from rewardserve.training.records import text_field as _text

from rewardserve.formatting import FormatError, Message, format_pair, render_chat

HH_ASSISTANT = "\n\nAssistant:"


def split_dialogue_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH dialogues into (shared prompt, chosen response, rejected response).

    The prompt ends just before the last ``\\n\\nAssistant:`` that both texts share up to the
    point where they first differ; everything after it is the response. When the two diverge
    before any Assistant turn, the prompt is empty and the responses are the whole texts, so
    nothing is lost: ``prompt + response`` always gives back the original dialogue.
    """
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    cut = chosen.rfind(HH_ASSISTANT, 0, n + len(HH_ASSISTANT) - 1)
    # The marker must lie wholly inside the shared prefix.
    while cut >= 0 and cut + len(HH_ASSISTANT) > n:
        cut = chosen.rfind(HH_ASSISTANT, 0, cut)
    if cut < 0:
        return "", chosen, rejected
    return chosen[:cut], chosen[cut:], rejected[cut:]


def _messages(value: Any, where: str) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: must be a non-empty list of {{role, content}} messages")
    out = []
    for j, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}[{j}]: must be an object with string 'role' and 'content'")
        out.append(Message(m["role"], m["content"]))
    return tuple(out)


def _response_text(rec: dict[str, Any], key: str, prompt: Any, where: str, fmt: TextFormatter) -> str:
    value = rec.get(key)
    if isinstance(value, list):  # conversational: prompt messages + response messages
        msgs = _messages(value, f"{where}: field '{key}'")
        if prompt is not None:
            msgs = _messages(prompt, f"{where}: field 'prompt'") + msgs
        return fmt.chat(msgs, where)
    response = _text(rec, key, where)
    if prompt is None:
        return response
    if isinstance(prompt, list):
        return fmt.chat(_messages(prompt, f"{where}: field 'prompt'") + (Message("assistant", response),), where)
    if not isinstance(prompt, str):
        raise DataError(f"{where}: field 'prompt' must be a string or a list of messages")
    return fmt.pair(prompt, response)


@dataclass(frozen=True)
class TextFormatter:
    """Formats prompts, responses and chats the way the model's ``reward.json`` will say."""

    prompt_template: str
    chat_template: str

    def pair(self, prompt: str, response: str) -> str:
        """Join prompt and response with the template."""
        return format_pair(self.prompt_template, prompt, response)

    def chat(self, messages: tuple[Message, ...], where: str) -> str:
        """Render messages with the chat template, naming the record on failure."""
        try:
            return render_chat(self.chat_template, messages)
        except FormatError as e:
            raise DataError(f"{where}: {e}") from e


def load_preferences(
    source: str | Path, fmt: TextFormatter, skip_invalid: bool = False, consensus: str = "hard"
) -> tuple[list[PreferenceGroup], LoadReport]:
    """Load pairs, HH dialogues, conversations, K-way rankings or several labellers' judgements.

    Judgements of the same texts (see :mod:`rewardserve.training.judgements`) are gathered over
    the whole file, then turned into pairs by ``consensus`` (hard, weighted or soft; see
    :mod:`rewardserve.training.consensus`). With ``skip_invalid`` a bad record is skipped and
    counted instead of raising.
    """
    groups: list[PreferenceGroup] = []
    report = LoadReport()
    judged = JudgementCollector()
    for src, line, rec in read_records(source):
        where = f"{src}:{line}"
        report.records += 1
        try:
            if is_judgement_record(rec):
                _collect(rec, where, fmt, judged, consensus, report)
                continue
            group = _parse_preference(rec, where, fmt, report)
        except DataError as e:
            if not skip_invalid:
                raise
            report.skip(e)
            continue
        if group is not None:
            groups.append(group)
    report.judged_items = judged.items
    groups += consensus_groups(judged.items, consensus, report)
    report.log(str(source))
    if not groups:
        raise DataError(f"{source}: no usable preference records")
    return groups, report


def load_judged_items(source: str | Path, fmt: TextFormatter, skip_invalid: bool = False):
    """Read only the several-labeller records of a file, as judged items (for agreement statistics)."""
    report, judged = LoadReport(), JudgementCollector()
    for src, line, rec in read_records(source):
        where = f"{src}:{line}"
        report.records += 1
        try:
            if not is_judgement_record(rec):
                report.notes["with a single anonymous judgement (no agreement to measure)"] += 1
                continue
            _collect(rec, where, fmt, judged, "hard", report)
        except DataError as e:
            if not skip_invalid:
                raise
            report.skip(e)
    report.log(str(source))
    return judged.items, report


def _collect(rec: dict[str, Any], where: str, fmt: TextFormatter, judged: JudgementCollector, consensus: str,
             report: LoadReport) -> None:
    margin = _margin(rec, where)
    if margin and str(getattr(consensus, "value", consensus)) == "soft":
        raise DataError(f"{where}: field 'margin' cannot be combined with --consensus soft "
                        "(the vote share already says how strong the preference is)")
    if "completions" in rec:
        texts = _ranking_texts(rec, where, fmt)
        judgements = ranking_judgements(rec, len(texts), where)
    else:
        texts = _pair_texts(rec, where, fmt, report)
        judgements = pair_judgements(rec, where)
    judged.add(where, texts, margin, judgements)


def _parse_preference(
    rec: dict[str, Any], where: str, fmt: TextFormatter, report: LoadReport
) -> PreferenceGroup | None:
    if "completions" in rec or "ranks" in rec:
        return _parse_ranking(rec, where, fmt, report)
    return PreferenceGroup(_pair_texts(rec, where, fmt, report), ((0, 1),), (_margin(rec, where),))


def _pair_texts(rec: dict[str, Any], where: str, fmt: TextFormatter, report: LoadReport) -> tuple[str, str]:
    """(chosen, rejected) as the model will read them."""
    prompt = rec.get("prompt")
    if prompt is None and isinstance(rec.get("chosen"), str) and isinstance(rec.get("rejected"), str):
        chosen, rejected = _text(rec, "chosen", where), _text(rec, "rejected", where)
        if chosen == rejected:
            raise DataError(f"{where}: fields 'chosen' and 'rejected' are identical")
        p, _, _ = split_dialogue_pair(chosen, rejected)
        report.notes["split as HH dialogues" if p else "kept whole (no shared Assistant turn)"] += 1
        # prompt + response is the original dialogue, so the texts are the dialogues themselves.
        return chosen, rejected
    chosen = _response_text(rec, "chosen", prompt, where, fmt)
    rejected = _response_text(rec, "rejected", prompt, where, fmt)
    if chosen == rejected:
        raise DataError(f"{where}: fields 'chosen' and 'rejected' are identical")
    return chosen, rejected


def _margin(rec: dict[str, Any], where: str) -> float:
    m = rec.get("margin", 0.0)
    if isinstance(m, bool) or not isinstance(m, int | float):
        raise DataError(f"{where}: field 'margin' must be a number, got {m!r}")
    return float(m)


def ranking_to_pairs(ranks: list[int]) -> list[tuple[int, int]]:
    """Return every (better, worse) index pair of a ranking (1 = best); ties give no pair."""
    pairs = []
    for i, j in itertools.combinations(range(len(ranks)), 2):
        if ranks[i] < ranks[j]:
            pairs.append((i, j))
        elif ranks[j] < ranks[i]:
            pairs.append((j, i))
    return pairs


def _parse_ranking(
    rec: dict[str, Any], where: str, fmt: TextFormatter, report: LoadReport
) -> PreferenceGroup | None:
    texts = _ranking_texts(rec, where, fmt)
    ranks = rec.get("ranks")
    if not isinstance(ranks, list) or len(ranks) != len(texts):
        got = len(ranks) if isinstance(ranks, list) else type(ranks).__name__
        raise DataError(f"{where}: field 'ranks' must list one rank per completion ({len(texts)}), got {got}")
    for j, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise DataError(f"{where}: field 'ranks[{j}]' must be an integer >= 1, got {r!r}")
    pairs = ranking_to_pairs(ranks)
    ties = len(texts) * (len(texts) - 1) // 2 - len(pairs)
    if ties:
        report.skipped["tied completions (no preference)"] += ties
    if not pairs:
        return None
    return PreferenceGroup(tuple(texts), tuple(pairs), (_margin(rec, where),) * len(pairs))


def _ranking_texts(rec: dict[str, Any], where: str, fmt: TextFormatter) -> tuple[str, ...]:
    comps = rec.get("completions")
    if not isinstance(comps, list) or len(comps) < 2:
        raise DataError(f"{where}: field 'completions' must be a list of at least 2 completions")
    prompt = rec.get("prompt")
    texts = []
    for j, c in enumerate(comps):
        if not isinstance(c, str) or not c.strip():
            raise DataError(f"{where}: field 'completions[{j}]' must be a non-empty string")
        texts.append(_response_text({"c": c}, "c", prompt, where, fmt))
    if len(set(texts)) != len(texts):
        raise DataError(f"{where}: field 'completions' holds the same completion twice")
    return tuple(texts)
