"""Open Inference Protocol (KServe v2) messages <-> domain values: the edge of ``service/kserve.py``.

Every model takes one input and gives FP32 outputs; composites give the total and their parts:

========================  ========  ==============  ==========================================
tensor                    type      shape           what
========================  ========  ==============  ==========================================
``text`` (input)          BYTES     [N] or [N, 1]   UTF-8 texts, scored as ``text`` items
``logits``                FP32      [N, L]          every logit (L = the model's labels)
``probabilities``         FP32      [N, L]          softmax (sigmoid for one logit)
``reward``                FP32      [N]             the reward (normalised with ``normalize``)
``parts`` (composites)    FP32      [N, T]          each term's unweighted value
========================  ========  ==============  ==========================================

Texts come as ``contents.bytes_contents`` or as ``raw_input_contents`` (what tritonclient sends:
each element a 4-byte little-endian length, then its bytes). Outputs go back as
``raw_output_contents`` (little-endian float32), as Triton does. Request parameters:
``normalize`` (bool) and ``truncation`` (``left``, ``right`` or ``error``); others are ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rewardserve.service.domain import ItemScore, ModelInfo, ScoreOptions
from rewardserve.service.engine.composite import KIND as COMPOSITE
from rewardserve.service.errors import InvalidArgument, ModelNotFound

from rewardserve.enums import Truncation, enum_values
from rewardserve.kserve import grpc_predict_v2_pb2 as pb

INPUT = "text"
VERSION = "1"  # one version per model: the bundle the server loaded
PLATFORMS = {"pairwise": "onnxruntime_onnx", "classifier": "onnxruntime_onnx", COMPOSITE: "rewardserve_composite"}
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class InferRequest:
    """One ModelInfer call: texts, the outputs asked for (empty: all) and the scoring options."""

    texts: tuple[str, ...]
    outputs: tuple[str, ...]
    options: ScoreOptions
    request_id: str = ""


def output_shapes(info: ModelInfo) -> dict[str, list[int]]:
    """The model's outputs and their shapes (-1: the batch dimension), in response order."""
    if info.kind == COMPOSITE:
        return {"reward": [-1], "parts": [-1, len(info.terms)]}
    n = len(info.labels)
    return {"logits": [-1, n], "probabilities": [-1, n], "reward": [-1]}


def check_version(name: str, version: str) -> None:
    """Raise ModelNotFound unless ``version`` is empty or the one served."""
    if version not in ("", VERSION):
        raise ModelNotFound(f"model {name!r} has no version {version!r} (versions: [{VERSION!r}])")


def model_metadata_to_pb(info: ModelInfo) -> pb.ModelMetadataResponse:
    """The model's versions, platform, the ``text`` input and its outputs."""
    meta = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=info.name, versions=[VERSION], platform=PLATFORMS.get(info.kind, "onnxruntime_onnx"),
        inputs=[meta(name=INPUT, datatype="BYTES", shape=[-1])],
        outputs=[meta(name=k, datatype="FP32", shape=v) for k, v in output_shapes(info).items()],
    )


def infer_request_from_pb(req: pb.ModelInferRequest, max_items: int) -> InferRequest:
    """Convert and validate a ModelInferRequest; InvalidArgument names the field."""
    if len(req.inputs) != 1:
        raise InvalidArgument(f"inputs: expected one BYTES tensor named {INPUT!r}, got {len(req.inputs)} inputs")
    tensor = req.inputs[0]
    if tensor.name != INPUT:
        raise InvalidArgument(f"inputs[0].name: expected {INPUT!r}, got {tensor.name!r}")
    if tensor.datatype != "BYTES":
        raise InvalidArgument(f"inputs[0] ({INPUT}): datatype must be BYTES (UTF-8 texts), got {tensor.datatype!r}")
    shape = list(tensor.shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] < 1:
        raise InvalidArgument(f"inputs[0] ({INPUT}): shape must be [N] or [N, 1] with N >= 1, got {shape}")
    n = shape[0]
    if n > max_items:
        raise InvalidArgument(f"inputs[0] ({INPUT}): {n} texts, at most {max_items} per request")
    if req.raw_input_contents:
        if len(req.raw_input_contents) != 1 or tensor.contents.bytes_contents:
            raise InvalidArgument("raw_input_contents: expected one entry (for 'text') and no inputs[0].contents")
        elements = _split_raw(req.raw_input_contents[0])
    else:
        elements = list(tensor.contents.bytes_contents)
    if len(elements) != n:
        raise InvalidArgument(f"inputs[0] ({INPUT}): shape says {n} texts, the contents hold {len(elements)}")
    texts = []
    for i, raw in enumerate(elements):
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise InvalidArgument(f"{INPUT}[{i}]: not valid UTF-8 ({e.reason} at byte {e.start})") from None
        if not texts[-1]:
            raise InvalidArgument(f"{INPUT}[{i}]: empty")
    return InferRequest(tuple(texts), tuple(dict.fromkeys(o.name for o in req.outputs)),
                        _options(req), req.id)


def _split_raw(data: bytes) -> list[bytes]:
    """Split a raw BYTES tensor: each element is a 4-byte little-endian length, then its bytes."""
    out, pos = [], 0
    while pos < len(data):
        if pos + _LENGTH.size > len(data):
            raise InvalidArgument(f"raw_input_contents[0]: element {len(out)}: truncated length prefix")
        (size,) = _LENGTH.unpack_from(data, pos)
        pos += _LENGTH.size
        if pos + size > len(data):
            raise InvalidArgument(f"raw_input_contents[0]: element {len(out)}: length {size} runs past the end "
                                  f"({len(data) - pos} bytes left)")
        out.append(data[pos:pos + size])
        pos += size
    return out


def _options(req: pb.ModelInferRequest) -> ScoreOptions:
    params = req.parameters
    normalize = False
    if "normalize" in params:
        p = params["normalize"]
        if p.WhichOneof("parameter_choice") == "bool_param":
            normalize = p.bool_param
        elif p.WhichOneof("parameter_choice") == "string_param" and p.string_param.lower() in ("true", "false"):
            normalize = p.string_param.lower() == "true"
        else:
            raise InvalidArgument("parameters.normalize: expected a bool")
    truncation = None
    if "truncation" in params:
        value = params["truncation"].string_param
        if value not in enum_values(Truncation):
            raise InvalidArgument(f"parameters.truncation: expected one of {enum_values(Truncation)}, got {value!r}")
        truncation = Truncation(value)
    return ScoreOptions(model=req.model_name, truncation=truncation, normalize=normalize)


def check_outputs(info: ModelInfo, wanted: Sequence[str]) -> dict[str, list[int]]:
    """Raise InvalidArgument for an output the model does not have; return its output shapes."""
    shapes = output_shapes(info)
    unknown = [w for w in wanted if w not in shapes]
    if unknown:
        raise InvalidArgument(f"outputs: {unknown[0]!r} is not an output of model {info.name!r} "
                              f"(outputs: {list(shapes)})")
    return shapes


def output_tensors(info: ModelInfo, scores: Sequence[ItemScore], wanted: Sequence[str]) -> dict[str, np.ndarray]:
    """The requested outputs (all when ``wanted`` is empty) as float32 arrays, in model order."""
    shapes = check_outputs(info, wanted)
    n = len(scores)
    columns = {
        "logits": lambda: [s.logits for s in scores],
        "probabilities": lambda: [s.probabilities for s in scores],
        "reward": lambda: [s.reward for s in scores],
        "parts": lambda: [[p.value for p in s.parts] for s in scores],
    }
    return {
        name: np.asarray(columns[name](), np.float32).reshape([n if d == -1 else d for d in shape])
        for name, shape in shapes.items() if not wanted or name in wanted
    }


def infer_response_to_pb(model: str, request_id: str, tensors: dict[str, np.ndarray]) -> pb.ModelInferResponse:
    """Build a ModelInferResponse with raw little-endian FP32 outputs."""
    return pb.ModelInferResponse(
        model_name=model, model_version=VERSION, id=request_id,
        outputs=[pb.ModelInferResponse.InferOutputTensor(name=k, datatype="FP32", shape=list(v.shape))
                 for k, v in tensors.items()],
        raw_output_contents=[v.astype("<f4").tobytes() for v in tensors.values()],
    )
