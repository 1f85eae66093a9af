"""The gRPC wire on the server side: bytes -> protobuf -> domain for requests, and back for results.

Decoding never raises: gRPC Python decodes each request before the servicer sees it, and when
the bytes are not a valid message (garbage, invalid UTF-8 in a string field, a truncated frame)
the generated handlers let the ``DecodeError`` escape, so the client gets UNKNOWN (or INTERNAL
mid-stream). :func:`add_servicer` registers handlers whose deserializer returns an
:class:`Undecodable` instead, which :func:`rewardserve.service.edge.status.grpc_errors` answers
with INVALID_ARGUMENT like any other bad input.

The servicer calls ``*_from_pb`` on requests and ``*_to_pb`` on results; nothing past the edge
sees a ``*_pb2`` type. Unknown option fields and enum values are refused with INVALID_ARGUMENT.

Example::

    add_servicer(servicer, server, reward_pb2.DESCRIPTOR.services_by_name["RewardService"])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import grpc
from google.protobuf import message_factory, unknown_fields
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from rewardserve.service.domain import (
    CompareRequest,
    CompareResult,
    ItemScore,
    ModelInfo,
    ScoreOptions,
    ScoreRequest,
    ScoreResult,
)
from rewardserve.service.errors import InvalidArgument

from rewardserve.enums import Truncation
from rewardserve.formatting import ChatItem, Item, Message, PairItem, TextItem
from rewardserve.v1 import reward_pb2 as pb

TRUNCATION_FROM_PB = {
    pb.TRUNCATION_MODE_UNSPECIFIED: None,
    pb.TRUNCATION_MODE_LEFT: Truncation.left,
    pb.TRUNCATION_MODE_RIGHT: Truncation.right,
    pb.TRUNCATION_MODE_ERROR: Truncation.error,
}


# ------------------------------------------------------------------ bytes -> pb
@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes did not decode as ``message_type``; ``error`` says why."""

    message_type: str
    error: str

    def describe(self) -> str:
        """The client-facing message."""
        return f"request is not a valid {self.message_type}: {self.error}"


def tolerant(message_class) -> Callable[[bytes], object]:
    """A deserializer returning the message, or :class:`Undecodable` when the bytes are invalid."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except DecodeError as e:
            # protobuf's text: "Error parsing message with type 'X': String field had bad UTF-8"
            return Undecodable(name, str(e).rpartition(": ")[2] or "cannot decode")

    return parse


_HANDLERS = {  # (client streaming, server streaming) -> handler factory
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_servicer(servicer, server: grpc.aio.Server, service: ServiceDescriptor) -> None:
    """Register every method of ``service`` on ``server``, like the generated ``add_*_to_server``."""
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = _HANDLERS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(getattr(servicer, method.name), request_deserializer=tolerant(request),
                                     response_serializer=response.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


# ------------------------------------------------------------------ pb -> domain
def _options_from_pb(o: pb.ScoreOptions, where: str) -> ScoreOptions:
    unknown = [f.field_number for f in unknown_fields.UnknownFieldSet(o)]
    if unknown:
        raise InvalidArgument(f"{where}: unknown option (field number {unknown[0]})")
    if o.truncation not in TRUNCATION_FROM_PB:
        raise InvalidArgument(f"{where}.truncation: unknown value {o.truncation}")
    return ScoreOptions(model=o.model, truncation=TRUNCATION_FROM_PB[o.truncation], normalize=o.normalize)


def _item_from_pb(it: pb.Item, i: int) -> Item:
    kind = it.WhichOneof("input")
    if kind == "text":
        return TextItem(it.text)
    if kind == "pair":
        return PairItem(it.pair.prompt, it.pair.response)
    if kind == "conversation":
        return ChatItem(tuple(Message(m.role, m.content) for m in it.conversation.messages))
    raise InvalidArgument(f"items[{i}]: no input set (text, pair or conversation)")


def score_request_from_pb(req: pb.ScoreRequest, max_items: int) -> ScoreRequest:
    """Convert and validate a ScoreRequest."""
    if len(req.items) > max_items:  # before converting a huge list
        raise InvalidArgument(f"items: {len(req.items)} items, at most {max_items} per request")
    out = ScoreRequest(
        items=tuple(_item_from_pb(it, i) for i, it in enumerate(req.items)),
        options=_options_from_pb(req.options, "options"),
        request_id=req.request_id,
    )
    out.validate(max_items)
    return out


def compare_request_from_pb(req: pb.CompareRequest, max_items: int) -> CompareRequest:
    """Convert and validate a CompareRequest."""
    out = CompareRequest(
        prompt=req.prompt,
        pairs=tuple((p.response_a, p.response_b) for p in req.pairs),
        options=_options_from_pb(req.options, "options"),
    )
    out.validate(max_items)
    return out


# ------------------------------------------------------------------ domain -> pb (server side)
def _item_score_to_pb(s: ItemScore) -> pb.ItemScore:
    return pb.ItemScore(logits=s.logits, probabilities=s.probabilities, reward=s.reward,
                        num_tokens=s.num_tokens, truncated=s.truncated,
                        parts=[pb.RewardPart(**asdict(p)) for p in s.parts])


def score_result_to_pb(r: ScoreResult) -> pb.ScoreResponse:
    """Build a ScoreResponse."""
    return pb.ScoreResponse(scores=[_item_score_to_pb(s) for s in r.scores], model=r.model, request_id=r.request_id)


def compare_result_to_pb(r: CompareResult) -> pb.CompareResponse:
    """Build a CompareResponse."""
    return pb.CompareResponse(
        comparisons=[pb.PairComparison(**asdict(c)) for c in r.comparisons], model=r.model
    )


def model_info_to_pb(m: ModelInfo) -> pb.ModelInfo:
    """Build a ModelInfo message."""
    d = asdict(m)
    norm = d.pop("normalization")
    agreement = d.pop("agreement")
    terms = [pb.CompositeTerm(**t) for t in d.pop("terms")]
    msg = pb.ModelInfo(**d, terms=terms)
    if norm is not None:
        msg.normalization.CopyFrom(pb.Normalization(mean=norm[0], std=norm[1]))
    if agreement is not None:  # optional fields stay unset for None (undefined statistics)
        msg.agreement.CopyFrom(pb.LabelAgreement(**{k: v for k, v in agreement.items() if v is not None}))
    return msg


def list_models_to_pb(models: Sequence[ModelInfo], default: str) -> pb.ListModelsResponse:
    """Build a ListModelsResponse."""
    return pb.ListModelsResponse(models=[model_info_to_pb(m) for m in models], default_model=default)
