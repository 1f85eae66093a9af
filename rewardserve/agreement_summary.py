"""The optional agreement summary of ``reward.json`` (schema version 2), and the bundle's error type.

Kept beside :mod:`rewardserve.bundle`, which re-exports both: the contract is still read and
written in one place, :class:`rewardserve.bundle.RewardSpec`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

AGREEMENT_TARGETS = ("majority", "vote_distribution", "hard", "weighted", "soft")


class BundleError(ValueError):
    """A bundle file is missing or invalid; the message names the file and the field."""


def bad_field(fieldname: str, problem: str) -> None:
    """Raise :class:`BundleError` for one field."""
    raise BundleError(f"field '{fieldname}': {problem}")


_bad = bad_field


@dataclass(frozen=True)
class AgreementSummary:
    """How much the labellers of the training data agreed (``rewardserve data stats`` computes it).

    A unit is one text's class votes (classifiers) or one pair of texts' judgements (preferences).

    Example::

        AgreementSummary(target="vote_distribution", units=19783, judgements=64000,
                         pairwise_agreement=0.85, krippendorff_alpha=0.45, mean_majority_share=0.91,
                         min_agreement=0.75, dropped_share=0.2)
    """

    target: str  # how training used the judgements: majority, vote_distribution, hard, weighted or soft
    units: int  # units with at least one judgement
    judgements: int  # labels or votes over all units
    pairwise_agreement: float | None = None  # mean share of agreeing pairs of judgements per unit
    krippendorff_alpha: float | None = None  # nominal
    kendalls_w: float | None = None  # mean over ranking items (rankings only)
    mean_majority_share: float | None = None  # mean share of the most common judgement per unit
    min_agreement: float = 0.75  # the majority-share threshold dropped_share refers to
    dropped_share: float = 0.0  # share of units whose majority share is below min_agreement
    outlier_labellers: tuple[str, ...] = ()  # labellers far from the others (only with labeller ids)

    def validate(self) -> None:
        """Raise :class:`BundleError` naming the first invalid field."""
        if self.target not in AGREEMENT_TARGETS:
            _bad("agreement.target", f"must be one of {list(AGREEMENT_TARGETS)}, got {self.target!r}")
        for name in ("units", "judgements"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                _bad(f"agreement.{name}", f"must be an integer >= 0, got {v!r}")
        for name in ("pairwise_agreement", "mean_majority_share", "kendalls_w", "min_agreement", "dropped_share"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and 0 <= v <= 1):
                _bad(f"agreement.{name}", f"must be a number in [0, 1], got {v!r}")
        a = self.krippendorff_alpha
        if a is not None and not (isinstance(a, int | float) and math.isfinite(a) and a <= 1):
            _bad("agreement.krippendorff_alpha", f"must be a finite number <= 1, got {a!r}")

    @classmethod
    def from_dict(cls, d: Any) -> AgreementSummary:
        """Build from parsed JSON, naming the field that is wrong."""
        if not isinstance(d, dict):
            _bad("agreement", "must be an object")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            _bad(f"agreement.{unknown[0]}", "unknown field")
        for req in ("target", "units", "judgements"):
            if req not in d:
                _bad(f"agreement.{req}", "is required")
        d = dict(d)
        if not isinstance(d.get("outlier_labellers", []), list):
            _bad("agreement.outlier_labellers", "must be a list of labeller ids")
        d["outlier_labellers"] = tuple(str(x) for x in d.get("outlier_labellers", []))
        out = cls(**d)
        out.validate()
        return out
