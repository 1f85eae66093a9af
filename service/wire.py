"""Registering a servicer whose request decoding never raises.

gRPC Python decodes each request before the servicer sees it; when the bytes are not a valid
message (garbage, invalid UTF-8 in a string field, a truncated frame) the generated handlers
let the ``DecodeError`` escape and the client gets UNKNOWN with the exception text, or INTERNAL
mid-stream. Here the deserializer returns an :class:`Undecodable` value instead, and
:func:`service.errors.grpc_errors` answers it with INVALID_ARGUMENT like any other bad input.

Example::

    add_servicer(servicer, server, reward_pb2.DESCRIPTOR.services_by_name["RewardService"])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError


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
