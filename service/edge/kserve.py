"""The Open Inference Protocol (KServe v2) servicer, beside RewardService on the same gRPC server.

Thin like :class:`service.servicer.RewardServicer`: each RPC converts at the edge
(:mod:`service.kserve_types`), asks the same registry (so ModelInfer items share batches with
native Score items), and errors become status codes in :func:`rewardserve.service.edge.status.grpc_errors`.
Tensors are described in :mod:`service.kserve_types`.

Example (tritonclient, unmodified)::

    client = tritonclient.grpc.InferenceServerClient("127.0.0.1:50051")
    text = tritonclient.grpc.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"a reply", b"another"], dtype=object))
    client.infer("hh", [text]).as_numpy("reward")
"""

from __future__ import annotations

import logging
from importlib import metadata

from rewardserve.service.edge import kserve_convert as kt
from rewardserve.service.edge.servicer import RewardServicer
from rewardserve.service.edge.status import grpc_errors
from rewardserve.service.errors import ModelNotFound, Unavailable

from rewardserve.formatting import TextItem
from rewardserve.kserve import grpc_predict_v2_pb2 as pb
from rewardserve.kserve import grpc_predict_v2_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SERVER_NAME = "rewardserve"


def _server_version() -> str:
    try:
        return metadata.version("rewardserve")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def _model_name(servicer: KServeServicer, request) -> str:
    return servicer.core.model_label(request.name)


def _infer_model(servicer: KServeServicer, request) -> str:
    return servicer.core.model_label(request.model_name)


class KServeServicer(grpc_predict_v2_pb2_grpc.GRPCInferenceServiceServicer):
    """Implements ``inference.GRPCInferenceService`` over the native servicer's registry.

    Example::

        kserve = KServeServicer(reward_servicer)   # shares registry, config and metrics
        add_servicer(kserve, server, pb.DESCRIPTOR.services_by_name["GRPCInferenceService"])
    """

    def __init__(self, core: RewardServicer):
        self.core = core
        self.config = core.config
        self.metrics = core.metrics

    @property
    def limit(self):
        """The native servicer's concurrency limit: one count for every protocol."""
        return self.core.limit

    @grpc_errors("ServerLive")
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)  # answering at all is being live

    @grpc_errors("ServerReady")
    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.core.registry is not None and not self.core.draining)

    @grpc_errors("ModelReady", _model_name)
    async def ModelReady(self, request, context):
        # Readiness is a yes/no question: an unknown model or version is simply not ready.
        try:
            self.core.models().get(request.name)
            kt.check_version(request.name, request.version)
        except (Unavailable, ModelNotFound):
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    @grpc_errors("ServerMetadata")
    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=_server_version(), extensions=[])

    @grpc_errors("ModelMetadata", _model_name)
    async def ModelMetadata(self, request, context):
        model = self.core.models().get(request.name)
        kt.check_version(request.name, request.version)
        return kt.model_metadata_to_pb(model.info)

    @grpc_errors("ModelInfer", _infer_model)
    async def ModelInfer(self, request, context):
        req = kt.infer_request_from_pb(request, self.config.max_items_per_request)
        model = self.core.models().get(req.options.model)
        kt.check_version(request.model_name, request.model_version)
        info = model.info
        kt.check_outputs(info, req.outputs)  # before scoring, not after
        scores = await model.score([TextItem(t) for t in req.texts], req.options, self.core.deadline(context),
                                   name_of=f"{kt.INPUT}[{{}}]".format)
        return kt.infer_response_to_pb(model.name, req.request_id, kt.output_tensors(info, scores, req.outputs))
