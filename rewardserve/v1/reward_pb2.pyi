from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TruncationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUNCATION_MODE_UNSPECIFIED: _ClassVar[TruncationMode]
    TRUNCATION_MODE_LEFT: _ClassVar[TruncationMode]
    TRUNCATION_MODE_RIGHT: _ClassVar[TruncationMode]
    TRUNCATION_MODE_ERROR: _ClassVar[TruncationMode]
TRUNCATION_MODE_UNSPECIFIED: TruncationMode
TRUNCATION_MODE_LEFT: TruncationMode
TRUNCATION_MODE_RIGHT: TruncationMode
TRUNCATION_MODE_ERROR: TruncationMode

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ...) -> None: ...

class PromptResponse(_message.Message):
    __slots__ = ("prompt", "response")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    response: str
    def __init__(self, prompt: _Optional[str] = ..., response: _Optional[str] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("text", "pair", "conversation")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PAIR_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    text: str
    pair: PromptResponse
    conversation: Conversation
    def __init__(self, text: _Optional[str] = ..., pair: _Optional[_Union[PromptResponse, _Mapping]] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class ScoreOptions(_message.Message):
    __slots__ = ("model", "truncation", "normalize")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    model: str
    truncation: TruncationMode
    normalize: bool
    def __init__(self, model: _Optional[str] = ..., truncation: _Optional[_Union[TruncationMode, str]] = ..., normalize: _Optional[bool] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("items", "options", "request_id")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    options: ScoreOptions
    request_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., options: _Optional[_Union[ScoreOptions, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ItemScore(_message.Message):
    __slots__ = ("logits", "probabilities", "reward", "num_tokens", "truncated", "parts")
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    logits: _containers.RepeatedScalarFieldContainer[float]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    reward: float
    num_tokens: int
    truncated: bool
    parts: _containers.RepeatedCompositeFieldContainer[RewardPart]
    def __init__(self, logits: _Optional[_Iterable[float]] = ..., probabilities: _Optional[_Iterable[float]] = ..., reward: _Optional[float] = ..., num_tokens: _Optional[int] = ..., truncated: _Optional[bool] = ..., parts: _Optional[_Iterable[_Union[RewardPart, _Mapping]]] = ...) -> None: ...

class CompositeTerm(_message.Message):
    __slots__ = ("model", "weight", "label")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    weight: float
    label: str
    def __init__(self, model: _Optional[str] = ..., weight: _Optional[float] = ..., label: _Optional[str] = ...) -> None: ...

class RewardPart(_message.Message):
    __slots__ = ("model", "label", "weight", "value")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    model: str
    label: str
    weight: float
    value: float
    def __init__(self, model: _Optional[str] = ..., label: _Optional[str] = ..., weight: _Optional[float] = ..., value: _Optional[float] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("scores", "model", "request_id")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[ItemScore]
    model: str
    request_id: str
    def __init__(self, scores: _Optional[_Iterable[_Union[ItemScore, _Mapping]]] = ..., model: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("prompt", "pairs", "options")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    pairs: _containers.RepeatedCompositeFieldContainer[ResponsePair]
    options: ScoreOptions
    def __init__(self, prompt: _Optional[str] = ..., pairs: _Optional[_Iterable[_Union[ResponsePair, _Mapping]]] = ..., options: _Optional[_Union[ScoreOptions, _Mapping]] = ...) -> None: ...

class ResponsePair(_message.Message):
    __slots__ = ("response_a", "response_b")
    RESPONSE_A_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_B_FIELD_NUMBER: _ClassVar[int]
    response_a: str
    response_b: str
    def __init__(self, response_a: _Optional[str] = ..., response_b: _Optional[str] = ...) -> None: ...

class PairComparison(_message.Message):
    __slots__ = ("reward_a", "reward_b", "prob_a_preferred")
    REWARD_A_FIELD_NUMBER: _ClassVar[int]
    REWARD_B_FIELD_NUMBER: _ClassVar[int]
    PROB_A_PREFERRED_FIELD_NUMBER: _ClassVar[int]
    reward_a: float
    reward_b: float
    prob_a_preferred: float
    def __init__(self, reward_a: _Optional[float] = ..., reward_b: _Optional[float] = ..., prob_a_preferred: _Optional[float] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("comparisons", "model")
    COMPARISONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    comparisons: _containers.RepeatedCompositeFieldContainer[PairComparison]
    model: str
    def __init__(self, comparisons: _Optional[_Iterable[_Union[PairComparison, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class Normalization(_message.Message):
    __slots__ = ("mean", "std")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    mean: float
    std: float
    def __init__(self, mean: _Optional[float] = ..., std: _Optional[float] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "kind", "labels", "reward_label", "reward_index", "max_length", "truncation_side", "text_format", "precision", "execution_provider", "parity_passed", "normalization", "model_type", "terms", "agreement")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REWARD_LABEL_FIELD_NUMBER: _ClassVar[int]
    REWARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_SIDE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PARITY_PASSED_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    reward_label: str
    reward_index: int
    max_length: int
    truncation_side: str
    text_format: str
    precision: str
    execution_provider: str
    parity_passed: bool
    normalization: Normalization
    model_type: str
    terms: _containers.RepeatedCompositeFieldContainer[CompositeTerm]
    agreement: LabelAgreement
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., reward_label: _Optional[str] = ..., reward_index: _Optional[int] = ..., max_length: _Optional[int] = ..., truncation_side: _Optional[str] = ..., text_format: _Optional[str] = ..., precision: _Optional[str] = ..., execution_provider: _Optional[str] = ..., parity_passed: _Optional[bool] = ..., normalization: _Optional[_Union[Normalization, _Mapping]] = ..., model_type: _Optional[str] = ..., terms: _Optional[_Iterable[_Union[CompositeTerm, _Mapping]]] = ..., agreement: _Optional[_Union[LabelAgreement, _Mapping]] = ...) -> None: ...

class LabelAgreement(_message.Message):
    __slots__ = ("target", "units", "judgements", "pairwise_agreement", "krippendorff_alpha", "kendalls_w", "mean_majority_share", "min_agreement", "dropped_share", "outlier_labellers")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    JUDGEMENTS_FIELD_NUMBER: _ClassVar[int]
    PAIRWISE_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    KRIPPENDORFF_ALPHA_FIELD_NUMBER: _ClassVar[int]
    KENDALLS_W_FIELD_NUMBER: _ClassVar[int]
    MEAN_MAJORITY_SHARE_FIELD_NUMBER: _ClassVar[int]
    MIN_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_SHARE_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_LABELLERS_FIELD_NUMBER: _ClassVar[int]
    target: str
    units: int
    judgements: int
    pairwise_agreement: float
    krippendorff_alpha: float
    kendalls_w: float
    mean_majority_share: float
    min_agreement: float
    dropped_share: float
    outlier_labellers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, target: _Optional[str] = ..., units: _Optional[int] = ..., judgements: _Optional[int] = ..., pairwise_agreement: _Optional[float] = ..., krippendorff_alpha: _Optional[float] = ..., kendalls_w: _Optional[float] = ..., mean_majority_share: _Optional[float] = ..., min_agreement: _Optional[float] = ..., dropped_share: _Optional[float] = ..., outlier_labellers: _Optional[_Iterable[str]] = ...) -> None: ...
