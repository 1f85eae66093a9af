"""Several labellers' judgements of the same completions, in three JSONL forms.

* rankings: ``{"prompt", "completions": [...], "rankings": [{"labeller": ID, "ranks": [...]}, ...]}``
  (ranks as in single rankings: 1 = best, ties allowed);
* pairs with vote counts: ``{"prompt", "chosen", "rejected", "votes": {"chosen": N, "rejected": M}}``
  (anonymous: no labeller ids);
* one line per labeller: a pair ``{"prompt", "chosen", "rejected", "labeller": ID}`` (``chosen`` is
  what that labeller preferred) or a ranking ``{"prompt", "completions", "ranks", "labeller": ID}``.
  Lines are grouped by their formatted texts, i.e. by prompt and the unordered set of
  completions, wherever they are in the file; completions may come in any order.

Every form becomes a :class:`JudgedItem`: the item's texts and one :class:`Judgement` (a
ranking of those texts) per labeller or vote. :mod:`rewardserve.training.consensus` turns items
into training pairs and :mod:`rewardserve.training.agreement` measures how much labellers agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rewardserve.training.records import DataError

# A record in one of these forms carries several judgements (or one labeller's share of them).
JUDGEMENT_KEYS = ("rankings", "votes", "labeller")


@dataclass(frozen=True)
class Judgement:
    """One labeller's (or one anonymous vote's) ranking of an item's texts; 1 = best."""

    labeller: str | None
    ranks: tuple[int, ...]


@dataclass
class JudgedItem:
    """An item's texts, every judgement of them, and where it was first read."""

    texts: tuple[str, ...]
    where: str
    margin: float = 0.0
    judgements: list[Judgement] = field(default_factory=list)

    @property
    def has_labeller_ids(self) -> bool:
        """Whether every judgement names its labeller."""
        return all(j.labeller is not None for j in self.judgements)


def is_judgement_record(rec: dict[str, Any]) -> bool:
    """Whether a record is in one of the several-labeller forms."""
    return any(k in rec for k in JUDGEMENT_KEYS)


class JudgementCollector:
    """Gathers judgement records into items, merging the lines that judge the same texts."""

    def __init__(self) -> None:
        self._items: dict[frozenset[str], JudgedItem] = {}

    @property
    def items(self) -> list[JudgedItem]:
        """The items in the order their first line was read."""
        return list(self._items.values())

    def add(self, where: str, texts: tuple[str, ...], margin: float, judgements: list[Judgement]) -> None:
        """Add judgements of ``texts`` (ranks in the order of ``texts``) read at ``where``."""
        key = frozenset(texts)
        item = self._items.get(key)
        if item is None:
            self._items[key] = JudgedItem(texts, where, margin, list(judgements))
            return
        order = [texts.index(t) for t in item.texts]  # this line's position of each of the item's texts
        seen = {j.labeller for j in item.judgements if j.labeller is not None}
        for j in judgements:
            if j.labeller is not None and j.labeller in seen:
                raise DataError(f"{where}: labeller {j.labeller!r} already judged these texts (first at {item.where})")
            item.judgements.append(Judgement(j.labeller, tuple(j.ranks[i] for i in order)))


def parse_ranks(value: Any, n: int, where: str, name: str) -> tuple[int, ...]:
    """Validate one ranking of ``n`` completions (integers >= 1)."""
    if not isinstance(value, list) or len(value) != n:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise DataError(f"{where}: field '{name}' must list one rank per completion ({n}), got {got}")
    for j, r in enumerate(value):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise DataError(f"{where}: field '{name}[{j}]' must be an integer >= 1, got {r!r}")
    return tuple(value)


def labeller_id(value: Any, where: str, name: str) -> str:
    """A labeller id: a non-empty string or an integer."""
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise DataError(f"{where}: field '{name}' must be a non-empty string or integer id, got {value!r}")
    return str(value)


def ranking_judgements(rec: dict[str, Any], n: int, where: str) -> list[Judgement]:
    """The judgements of a ranking record: its ``rankings`` list, or its own ``ranks`` and ``labeller``."""
    if "rankings" not in rec:
        if "labeller" not in rec:
            raise DataError(f"{where}: a ranking needs 'ranks' (one labeller) or 'rankings' (several)")
        return [Judgement(labeller_id(rec["labeller"], where, "labeller"), parse_ranks(rec.get("ranks"), n, where, "ranks"))]
    rankings = rec["rankings"]
    if not isinstance(rankings, list) or not rankings:
        raise DataError(f"{where}: field 'rankings' must be a non-empty list of {{labeller, ranks}}")
    out, seen = [], set()
    for k, r in enumerate(rankings):
        name = f"rankings[{k}]"
        if not isinstance(r, dict):
            raise DataError(f"{where}: field '{name}' must be an object with 'labeller' and 'ranks'")
        if "labeller" not in r:
            raise DataError(f"{where}: field '{name}.labeller' is missing")
        who = labeller_id(r["labeller"], where, f"{name}.labeller")
        if who in seen:
            raise DataError(f"{where}: field '{name}.labeller': {who!r} ranks these completions twice")
        seen.add(who)
        out.append(Judgement(who, parse_ranks(r.get("ranks"), n, where, f"{name}.ranks")))
    return out


def pair_judgements(rec: dict[str, Any], where: str) -> list[Judgement]:
    """The judgements of a pair record (texts in the order chosen, rejected)."""
    if "votes" not in rec:
        return [Judgement(labeller_id(rec["labeller"], where, "labeller"), (1, 2))]
    if "labeller" in rec:
        raise DataError(f"{where}: give either 'votes' (counts) or 'labeller' (one line per labeller), not both")
    votes = rec["votes"]
    if not isinstance(votes, dict) or set(votes) != {"chosen", "rejected"}:
        raise DataError(f"{where}: field 'votes' must be {{\"chosen\": N, \"rejected\": M}}, got {votes!r}")
    for side in ("chosen", "rejected"):
        v = votes[side]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise DataError(f"{where}: field 'votes.{side}' must be a non-negative integer, got {v!r}")
    if votes["chosen"] + votes["rejected"] == 0:
        raise DataError(f"{where}: field 'votes' holds no votes")
    return [Judgement(None, (1, 2))] * votes["chosen"] + [Judgement(None, (2, 1))] * votes["rejected"]
