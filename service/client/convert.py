"""Protobuf <-> domain conversion on the client side: requests out, results in."""

from __future__ import annotations

from rewardserve.service.domain import (
    CompareRequest,
    CompareResult,
    ItemScore,
    ModelInfo,
    PairComparison,
    RewardPart,
    ScoreOptions,
    ScoreRequest,
    ScoreResult,
)
from rewardserve.service.recipes import CompositeTerm

from rewardserve.agreement_summary import AgreementSummary
from rewardserve.enums import Truncation
from rewardserve.formatting import Item, PairItem, TextItem
from rewardserve.v1 import reward_pb2 as pb

_TRUNC_TO_PB = {
    None: pb.TRUNCATION_MODE_UNSPECIFIED,
    Truncation.left: pb.TRUNCATION_MODE_LEFT,
    Truncation.right: pb.TRUNCATION_MODE_RIGHT,
    Truncation.error: pb.TRUNCATION_MODE_ERROR,
}


def _options_to_pb(o: ScoreOptions) -> pb.ScoreOptions:
    return pb.ScoreOptions(model=o.model, truncation=_TRUNC_TO_PB[o.truncation], normalize=o.normalize)


def _item_to_pb(item: Item) -> pb.Item:
    if isinstance(item, TextItem):
        return pb.Item(text=item.text)
    if isinstance(item, PairItem):
        return pb.Item(pair=pb.PromptResponse(prompt=item.prompt, response=item.response))
    msgs = [pb.ChatMessage(role=m.role, content=m.content) for m in item.messages]
    return pb.Item(conversation=pb.Conversation(messages=msgs))


def score_request_to_pb(r: ScoreRequest) -> pb.ScoreRequest:
    """Build a ScoreRequest message."""
    return pb.ScoreRequest(items=[_item_to_pb(i) for i in r.items], options=_options_to_pb(r.options),
                           request_id=r.request_id)


def compare_request_to_pb(r: CompareRequest) -> pb.CompareRequest:
    """Build a CompareRequest message."""
    pairs = [pb.ResponsePair(response_a=a, response_b=b) for a, b in r.pairs]
    return pb.CompareRequest(prompt=r.prompt, pairs=pairs, options=_options_to_pb(r.options))


def score_result_from_pb(msg: pb.ScoreResponse) -> ScoreResult:
    """Convert a ScoreResponse."""
    scores = tuple(
        ItemScore(tuple(s.logits), tuple(s.probabilities), s.reward, s.num_tokens, s.truncated,
                  tuple(RewardPart(p.model, p.label, p.weight, p.value) for p in s.parts))
        for s in msg.scores
    )
    return ScoreResult(scores=scores, model=msg.model, request_id=msg.request_id)


def compare_result_from_pb(msg: pb.CompareResponse) -> CompareResult:
    """Convert a CompareResponse."""
    comps = tuple(PairComparison(c.reward_a, c.reward_b, c.prob_a_preferred) for c in msg.comparisons)
    return CompareResult(comparisons=comps, model=msg.model)


def model_info_from_pb(msg: pb.ModelInfo) -> ModelInfo:
    """Convert a ModelInfo message."""
    norm = (msg.normalization.mean, msg.normalization.std) if msg.HasField("normalization") else None
    return ModelInfo(
        name=msg.name, kind=msg.kind, labels=tuple(msg.labels), reward_label=msg.reward_label,
        reward_index=msg.reward_index, max_length=msg.max_length, truncation_side=msg.truncation_side,
        text_format=msg.text_format, precision=msg.precision, execution_provider=msg.execution_provider,
        parity_passed=msg.parity_passed, normalization=norm, model_type=msg.model_type,
        terms=tuple(CompositeTerm(t.model, t.weight, t.label) for t in msg.terms),
        agreement=_agreement_from_pb(msg.agreement) if msg.HasField("agreement") else None,
    )


def _agreement_from_pb(a: pb.LabelAgreement) -> AgreementSummary:
    optional = {k: getattr(a, k) if a.HasField(k) else None
                for k in ("pairwise_agreement", "krippendorff_alpha", "kendalls_w", "mean_majority_share")}
    return AgreementSummary(target=a.target, units=a.units, judgements=a.judgements, min_agreement=a.min_agreement,
                            dropped_share=a.dropped_share, outlier_labellers=tuple(a.outlier_labellers), **optional)


def empty_list_models() -> pb.ListModelsRequest:
    """A ListModelsRequest (for clients)."""
    return pb.ListModelsRequest()


def get_model_request(name: str) -> pb.GetModelRequest:
    """A GetModelRequest (for clients)."""
    return pb.GetModelRequest(model=name)
