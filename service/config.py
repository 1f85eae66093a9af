"""``ServiceConfig``: every setting of one ``rewardserve serve`` process, validated once.

Values come from CLI flags, ``REWARDSERVE_*`` environment variables and an optional TOML or
JSON file, in that order of precedence, through :meth:`ServiceConfig.from_sources`.

Example::

    config = ServiceConfig(models=(ModelSource("hh", "models/hh-onnx"),), port=0)
    config = ServiceConfig.from_sources({"port": "50051"}, os.environ, "serve.toml")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rewardserve.service import auto_batching as auto
from rewardserve.service.config_file import check_keys, load_file
from rewardserve.service.cpus import available_cpus
from rewardserve.service.names import Aliases, Strip, check_names, parse_aliases, parse_strip
from rewardserve.service.recipes import CompositeSpec, check_recipes, parse_composites

from rewardserve.enums import BatcherFailurePolicy, EngineLayout, ModelErrorPolicy, Provider, enum_values
from rewardserve.manifest import Runtime, ServedPrecision, check_combination, parse_precision, parse_runtime

ENV_PREFIX = "REWARDSERVE_"


@dataclass(frozen=True)
class ModelSource:
    """A served model: its name in requests and its ONNX bundle directory."""

    name: str
    path: str

    @classmethod
    def parse(cls, spec: str) -> ModelSource:
        """Parse ``NAME=DIR`` (or a bare ``DIR``, named after its last path component)."""
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name, spec
        if not name or not path:
            raise ValueError(f"models: expected NAME=DIR, got {spec!r}")
        return cls(name.strip(), path.strip())


def _opt(default: Any, help: str, parse=None, secret: bool = False):
    """A config field with its help text (shared with the CLI) and its string parser.

    A ``secret`` field is left out of ``repr`` and gets no CLI flag (``ps`` shows flags): it is
    set through ``REWARDSERVE_<NAME>`` or the config file only.
    """
    return field(default=default, repr=not secret, metadata={"help": help, "parse": parse, "secret": secret})


def _optional_str(value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def _optional_bool(value: Any) -> bool | None:
    try:
        return None if str(value).strip().lower() in ("auto", "") else _bool(value)
    except ValueError:
        raise ValueError(f"expected auto, on or off, got {value!r}") from None


def _optional_float(value: Any) -> float | None:
    return None if str(value).strip().lower() in ("auto", "") else float(value)


def _optional_port(value: Any) -> int | None:
    if value is None or str(value).lower() in ("none", "off", ""):
        return None
    return int(value)


def _models(value: Any) -> tuple[ModelSource, ...]:
    if isinstance(value, Mapping):  # TOML/JSON table {name = "dir"}
        return tuple(ModelSource(str(k), str(v)) for k, v in value.items())
    if isinstance(value, str):  # env: "a=/x,b=/y"
        value = [v for v in value.split(",") if v.strip()]
    return tuple(v if isinstance(v, ModelSource) else ModelSource.parse(str(v)) for v in value)


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of the reward server. The first model is the default one."""

    models: tuple[ModelSource, ...] = _opt((), "served models as NAME=DIR (ONNX bundles); first is default", _models)
    host: str = _opt("127.0.0.1", "gRPC bind address (loopback by default; 0.0.0.0 to expose)", str)
    port: int = _opt(50051, "gRPC port (0: any free port)", int)
    metrics_port: int | None = _opt(9400, "Prometheus /metrics port (0: any free port; off: none)", _optional_port)
    metrics_host: str = _opt("127.0.0.1", "/metrics bind address (loopback by default, apart from host)", str)
    tls_cert_file: str | None = _opt(None, "PEM server certificate (chain): gRPC and HTTP over TLS", _optional_str)
    tls_key_file: str | None = _opt(None, "PEM private key of tls_cert_file (unencrypted)", _optional_str)
    tls_client_ca_file: str | None = _opt(None, "PEM CA certificates: clients must present a certificate they "
                                          "signed (mutual TLS)", _optional_str)
    auth_token_file: str | None = _opt(None, "file of accepted bearer tokens, one per line: calls need "
                                       "'authorization: Bearer TOKEN' (health is open)", _optional_str)
    auth_token: str = _opt("", "accepted bearer tokens, comma-separated (REWARDSERVE_AUTH_TOKEN or the config "
                           "file only)", str, secret=True)
    max_request_bytes: int = _opt(16 << 20, "largest request message, in bytes (RESOURCE_EXHAUSTED beyond)", int)
    max_text_chars: int = _opt(200_000, "most characters in one item (text, prompt + response, or all messages)",
                               int)
    max_concurrent_requests: int = _opt(1024, "calls handled at once; more get RESOURCE_EXHAUSTED / HTTP 429 "
                                        "(health is exempt)", int)
    max_batch_items: int = _opt(64, "most items in one ONNX Runtime batch", int)
    max_batch_tokens: int = _opt(0, "most padded tokens (items x longest) in one batch; 0: auto, "
                                 f"{auto.AUTO_BATCH_TOKENS['cuda']} on CUDA, {auto.AUTO_BATCH_TOKENS['cpu']} on CPU "
                                 "(at least max_length)", int)
    max_wait_ms: float | None = _opt(None, "longest a partial batch is held for more items while a worker is "
                                     "free, counted from its oldest item's arrival, in ms (auto: "
                                     f"{auto.AUTO_WAIT_MS['cpu']:g} on CPU, {auto.AUTO_WAIT_MS['cuda']:g} on CUDA)",
                                     _optional_float)
    min_padding_efficiency: float | None = _opt(
        None, "a batch grows only while its real / padded tokens stay at least this, 0 to 1 (auto: "
        f"{auto.AUTO_PADDING_FLOOR['cpu']:g} on CPU, {auto.AUTO_PADDING_FLOOR['cuda']:g} on CUDA)", _optional_float)
    inline_batch_ms: float | None = _opt(
        None, "a batch expected (from those measured) to run within this many ms runs on the event loop, not an "
        "inference thread, unless max_wait_ms holds batches "
        f"(auto: {auto.AUTO_INLINE_MS['cpu']:g} on CPU, {auto.AUTO_INLINE_MS['cuda']:g} on CUDA)",
        _optional_float)
    max_queue_items: int = _opt(4096, "items queued per model before RESOURCE_EXHAUSTED", int)
    max_items_per_request: int = _opt(1024, "most items in one request", int)
    request_timeout_s: float = _opt(60.0, "deadline of requests that carry none, in seconds", float)
    backend: Runtime | None = _opt(None, "auto (the fastest combination that passed parity for this host) | "
                                   "onnxruntime | openvino (CPU)", parse_runtime)
    precision: ServedPrecision | None = _opt(None, "auto|fp32|fp16|int8 (ONNX variants) | bf16 (OpenVINO on the "
                                             "fp32 variant, CPUs with AVX-512 BF16/AMX)", parse_precision)
    provider: Provider = _opt(Provider.auto, "ONNX Runtime provider: auto|cpu|cuda (cuda stops if CUDA fails to "
                              "load; auto logs the fallback)", Provider)
    packing: bool | None = _opt(None, "packed rows (BERT classifiers: several texts per row, no padding between "
                                "them): auto (served where export measured it faster) | on | off", _optional_bool)
    selection_budget_s: float = _opt(20.0, "backend auto on a host unlike the export host: seconds per model to "
                                     "re-measure the combinations at load", float)
    intra_op_threads: int = _opt(0, "ONNX Runtime threads per inference (0: auto: 1 on CPU when workers are "
                                 "auto, else cores / workers; ONNX Runtime's default on CUDA)", int)
    processes: int = _opt(0, "server processes sharing the ports, each a whole server (0: auto: one per CPU this "
                          "process may use, from its affinity and cgroup quota)", int)
    grpc_listeners: int = _opt(auto.DEFAULT_GRPC_LISTENERS, "gRPC servers in each process on its port, accepting "
                               "calls side by side, so that floods of single-item calls batch together", int)
    engine: EngineLayout = _opt(EngineLayout.auto, "with several processes: per-process (each a whole server "
                                "with its own models) or shared (edge processes hand token ids to one engine "
                                "process that batches across all of them); auto: shared on CUDA, else "
                                "per-process", EngineLayout)
    cpus: int = _opt(0, "CPUs for inference, shared by every served model (0: auto: affinity and cgroup quota; "
                     "with --processes N, each process gets its share)", int)
    inference_workers: int = _opt(0, "batches of one model run concurrently (0: auto: one per core on CPU, "
                                  "1 on CUDA)", int)
    tokenizer_workers: int = _opt(2, "threads that format and tokenize requests", int)
    grace_period_s: float = _opt(10.0, "on SIGTERM, time to finish accepted requests, in seconds", float)
    allow_failed_parity: bool = _opt(False, "serve variants whose export parity check failed", _bool)
    cuda_graphs: bool = _opt(False, "ONNX Runtime CUDA graphs, one per (rows, length) bucket, all captured "
                             "before SERVING (CUDA only; unmeasured: see service/backends/cuda_graphs.py)", _bool)
    http_port: int | None = _opt(None, "OpenRLHF-compatible HTTP port on host (POST /get_reward, GET /health); "
                                 "0: any free port; off (default): none", _optional_port)
    http_model: str = _opt("", "model or composite that /get_reward scores when the request names none "
                           "(empty: the default model)", str)
    model_aliases: Aliases = _opt((), "ALIAS=NAME: HTTP model ALIAS (verl's model path) is NAME", parse_aliases)
    http_strip: Strip = _opt((), "MODEL=STRING: cut STRING (an EOS, pad token) from MODEL's HTTP texts", parse_strip)
    composites: tuple[CompositeSpec, ...] = _opt((), "composite rewards as NAME=EXPR, e.g. "
                                                  "'safe=hh - 0.5*toxicity:toxic' (service/recipes.py)",
                                                  parse_composites)
    on_batcher_failure: BatcherFailurePolicy = _opt(BatcherFailurePolicy.restart, "a model whose batcher task "
                                                    "dies is NOT_SERVING in health (service rewardserve.v1."
                                                    "RewardService/MODEL); then: restart it, or exit (code 1)",
                                                    BatcherFailurePolicy)
    max_stream_in_flight: int = _opt(32, "ScoreStream messages in flight per stream (each counts against "
                                     "max_concurrent_requests); beyond it the stream is not read", int)
    max_connection_age_s: float = _opt(0.0, "close each gRPC connection after about this many seconds (in-flight "
                                       "calls finish), so clients re-resolve and find new replicas; 0: never", float)
    on_model_error: ModelErrorPolicy = _opt(ModelErrorPolicy.fail, "a model that fails to load: fail (exit "
                                            "non-zero) or skip (log it, serve the others; exit non-zero if "
                                            "none loads)", ModelErrorPolicy)

    def __post_init__(self) -> None:
        for f in fields(self):  # accept strings everywhere (env, files), store typed values
            value = getattr(self, f.name)
            try:
                object.__setattr__(self, f.name, f.metadata["parse"](value) if value is not None else None)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{f.name}: {e}") from e
        self.validate()

    def validate(self) -> None:
        """Raise ValueError stating the first rule that is broken."""
        names = [m.name for m in self.models]
        if not self.models:
            raise ValueError("models must name at least one ONNX bundle (NAME=DIR)")
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        for port_name in ("port", "metrics_port", "http_port"):
            port = getattr(self, port_name)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{port_name} must be in 0..65535, got {port}")
        if self.max_batch_tokens < 0:
            raise ValueError(f"max_batch_tokens must be >= 0 (0: auto), got {self.max_batch_tokens}")
        for name in ("max_batch_items", "max_queue_items", "max_items_per_request",
                     "tokenizer_workers", "max_request_bytes", "max_text_chars",
                     "max_concurrent_requests", "max_stream_in_flight", "grpc_listeners"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_items_per_request > self.max_queue_items:
            raise ValueError(f"max_items_per_request ({self.max_items_per_request}) must be <= max_queue_items "
                             f"({self.max_queue_items}), or a full request could never be queued")
        for name in ("intra_op_threads", "inference_workers", "processes", "cpus"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: auto), got {getattr(self, name)}")
        check_combination(self.backend, self.precision, self.provider.value)
        for name in ("max_wait_ms", "inline_batch_ms", "grace_period_s", "max_connection_age_s", "selection_budget_s"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= (self.min_padding_efficiency or 0) <= 1:
            raise ValueError(f"min_padding_efficiency must be between 0 and 1, got {self.min_padding_efficiency}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        check_recipes(self.composites, names)
        scorable = names + [c.name for c in self.composites]
        check_names(self.model_aliases, self.http_strip, scorable)
        if self.http_model and self.http_model not in scorable:
            raise ValueError(f"http_model {self.http_model!r} is not a served model or composite ({scorable})")

    def check_max_length(self, model: str, max_length: int) -> None:
        """Raise ValueError unless one model's longest input fits in a batch."""
        if self.max_batch_tokens and self.max_batch_tokens < max_length:  # auto (0) adapts to max_length
            raise ValueError(f"max_batch_tokens must be >= max_length of every model: {model} has max_length "
                             f"{max_length}, max_batch_tokens is {self.max_batch_tokens}")

    def threading(self, provider: Provider, cores: int | None = None) -> tuple[int, int]:
        """(inference workers, intra-op threads) of one model: the set values, or auto for the provider.

        On CPU, auto runs one single-threaded inference per core: ONNX Runtime's intra-op
        parallelism costs a thread hand-off per operator, and on the HH MiniLM int8 model 2
        workers x 1 thread ran 103 items/s where 1 worker x 2 threads ran 58-87 (2 cores,
        batches of 4 x 140 tokens). A GPU runs one batch at a time best: 1 worker.
        """
        if Provider(provider) is Provider.cuda:
            return self.inference_workers or 1, self.intra_op_threads
        # One budget for every model: a 4-CPU container never runs 4 workers per model.
        cores = cores or max(1, (self.cpus or available_cpus()) // max(1, len(self.models)))
        if self.inference_workers:
            return self.inference_workers, self.intra_op_threads or max(1, cores // self.inference_workers)
        if self.intra_op_threads:
            return max(1, cores // self.intra_op_threads), self.intra_op_threads
        return cores, 1

    def wait_ms(self, provider: Provider) -> float:
        """How long a partial batch may be held: the set max_wait_ms, or auto for the provider."""
        return auto.AUTO_WAIT_MS[Provider(provider).value] if self.max_wait_ms is None else self.max_wait_ms

    def inline_ms(self, provider: Provider) -> float:
        """How quick a batch must be expected to be to run on the event loop: the set value, or auto."""
        return auto.AUTO_INLINE_MS[Provider(provider).value] if self.inline_batch_ms is None else self.inline_batch_ms

    def padding_floor(self, provider: Provider, packed: bool = False) -> float:
        """The least padding efficiency a batch may grow to: the set value, or auto for the provider (0 packed)."""
        if self.min_padding_efficiency is not None:
            return self.min_padding_efficiency
        return 0.0 if packed else auto.AUTO_PADDING_FLOOR[Provider(provider).value]

    def batch_tokens(self, provider: Provider, max_length: int, runtime: Runtime | None = None, packed=False) -> int:
        """The token budget of one model's batches: the set value, or auto for the backend and provider."""
        key = "openvino-packed" if packed else "openvino" if runtime is Runtime.openvino else Provider(provider).value
        return self.max_batch_tokens or max(auto.AUTO_BATCH_TOKENS[key], max_length)

    @classmethod
    def from_sources(cls, cli_args: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                     file: str | Path | None = None) -> ServiceConfig:
        """Merge defaults < config file < ``REWARDSERVE_*`` env < CLI values (None means unset)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        if file is not None:
            values.update(check_keys(load_file(file), known, str(file)))
        for key, value in (env or {}).items():
            if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):].lower() in known:
                values[key[len(ENV_PREFIX):].lower()] = value
        values.update(check_keys({k: v for k, v in (cli_args or {}).items() if v is not None}, known, "flags"))
        return cls(**values)


PRECISION_CHOICES = ["auto", *enum_values(ServedPrecision)]
