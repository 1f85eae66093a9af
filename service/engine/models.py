"""Served models: an ONNX bundle loaded with its tokenizer, backend and batcher, and the registry.

Loading goes through ``reward.json`` (:class:`RewardSpec`) and ``manifest.json``
(:class:`Manifest`) only, and refuses variants whose parity check failed unless allowed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rewardserve.service.backends.base import Backend, Served, open_backend
from rewardserve.service.backends.choice import choose_variant  # noqa: F401 (callers import it from here)
from rewardserve.service.backends.packing import packed_tokens
from rewardserve.service.config import ModelErrorPolicy, ModelSource, ServiceConfig
from rewardserve.service.domain import (
    Encoded,
    ItemScore,
    ModelInfo,
    ScoreOptions,
    check_text_chars,
    item_chars,
)
from rewardserve.service.engine.batcher import Batcher
from rewardserve.service.engine.composite import CompositeModel, build_composites
from rewardserve.service.engine.encoding import TextEncoder, TooLong, buckets, pad_batch, padded_length
from rewardserve.service.engine.integrity import check_sha256, check_vocab_fits
from rewardserve.service.engine.postprocess import batch_rows, to_scores
from rewardserve.service.errors import DeadlineExpired, InvalidArgument, ModelNotFound
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.bundle import BundleError, RewardSpec
from rewardserve.enums import Truncation
from rewardserve.formatting import FormatError, Item, format_item
from rewardserve.manifest import MANIFEST_FILE, Manifest, VariantInfo, check_spec_hash

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
# Requests this short (characters of text, each item's counted up to its tokenizer window) are
# formatted and tokenized on the event loop: ~100 us at most, less than handing them to the prep
# pool and waking the loop again (measured with py-spy under 256 single-item clients). Longer ones
# go to the pool, which tokenizes without the GIL.
INLINE_PREPARE_CHARS = 512
def padded(backend: Backend, pad_id: int, max_length: int | None = None) -> Callable[[Sequence[Encoded]], np.ndarray]:
    """The batcher's runner: pad a batch of encoded items (to the backend's buckets, if any), run it."""
    multiple = getattr(backend, "pad_to_multiple", 0)
    return lambda batch: backend.run(pad_batch(batch, pad_id, multiple, max_length))


class ScoringModel:
    """One served model: formats, tokenizes, batches, runs and post-processes its items.

    Example::

        model = ScoringModel.load(ModelSource("hh", "models/hh-onnx"), config, metrics, pool)
        model.start()
        scores = await model.score([PairItem("Hi", "Hello!")], ScoreOptions(), deadline)
    """

    def __init__(self, name: str, spec: RewardSpec, variant: VariantInfo, encoder: TextEncoder,
                 backend: Backend, batcher: Batcher, prep_pool: ThreadPoolExecutor,
                 max_text_chars: int | None = None, served: Served | None = None, info: ModelInfo | None = None):
        self.name = name
        self._info = info  # set in an edge process: what the engine process serves (engine/link.py)
        self.served = served  # the combination (runtime, precision, device) and why it was chosen
        self.spec = spec
        self.variant = variant
        self.encoder = encoder
        self.backend = backend
        self.run_batch = batcher.run_batch  # what the batcher runs: pad, then the backend
        self.batcher = batcher
        self._prep_pool = prep_pool
        # Checked here, on the path every protocol (gRPC, HTTP, KServe) takes to the batcher.
        self.max_text_chars = max_text_chars

    @classmethod
    def load(cls, source: ModelSource, config: ServiceConfig, metrics: ServiceMetrics,
             prep_pool: ThreadPoolExecutor) -> ScoringModel:
        """Load an ONNX bundle (blocking); errors name the file and the problem."""
        directory = Path(source.path)
        if not directory.is_dir():
            raise BundleError(f"model {source.name}: {directory} is not a directory")
        spec = RewardSpec.load(directory)
        manifest = Manifest.load(directory)
        config.check_max_length(source.name, spec.max_length)
        manifest_path = directory / MANIFEST_FILE
        encoder = TextEncoder.from_file(directory / TOKENIZER_FILE, spec.max_length)
        check_sha256(directory / TOKENIZER_FILE, manifest.tokenizer_sha256, manifest_path)
        if (warning := check_spec_hash(directory, manifest)) is not None:  # old bundles: load, but say so
            logger.warning("model %s: %s", source.name, warning)
        served = open_backend(directory, manifest, config)
        backend, variant, workers, threads = served.backend, served.variant, served.workers, served.threads
        check_sha256(variant.path(directory), variant.sha256, manifest_path)  # after: garbage fails to parse first
        check_vocab_fits(encoder, backend, manifest.pad_token_id, directory / TOKENIZER_FILE, manifest.embedding_rows)
        batcher = Batcher(
            source.name, padded(backend, manifest.pad_token_id, spec.max_length), metrics,
            max_batch_items=config.max_batch_items, max_wait_ms=config.wait_ms(served.device),
            max_batch_tokens=config.batch_tokens(served.device, spec.max_length, served.runtime, served.packed),
            max_queue_items=config.max_queue_items, workers=workers, rows=lambda logits: batch_rows(logits, spec),
            min_padding_efficiency=config.padding_floor(served.device, served.packed),
            inline_max_ms=config.inline_ms(served.device),
        )
        batcher.padded_tokens = (  # what a batch runs: packed rows as the backend packs them, or buckets
            (lambda lengths: packed_tokens(lengths, backend.row_tokens)) if served.packed else
            (lambda lengths: len(lengths) * padded_length(max(lengths), backend.pad_to_multiple, spec.max_length)))
        model = cls(source.name, spec, variant, encoder, backend, batcher, prep_pool, config.max_text_chars, served)
        metrics.set_model_info(
            source.name, {"path": str(directory), "precision": served.precision.value, "provider": backend.provider,
             "kind": spec.kind.value, "max_length": str(spec.max_length), "parity_passed": str(variant.passed)}
        )
        logger.info("model %s: %s %s on %s (%d workers x %d threads): %s", source.name, spec.kind.value,
                    variant.file, served.execution_provider, workers, threads, served.reason)
        return model

    @property
    def info(self) -> ModelInfo:
        """What the model is and how it runs."""
        if self._info is not None:
            return self._info
        n = self.spec.normalization
        return ModelInfo(
            name=self.name, kind=self.spec.kind.value, labels=tuple(self.spec.labels),
            reward_label=self.spec.reward_label, reward_index=self.spec.reward_index,
            max_length=self.spec.max_length, truncation_side=self.spec.truncation_side.value,
            text_format=self.spec.text_format.value,
            precision=(self.served.precision if self.served else self.variant.precision).value,
            execution_provider=self.served.execution_provider if self.served else self.backend.provider,
            parity_passed=self.served.parity_passed if self.served else self.variant.passed,
            normalization=None if n is None else (n.mean, n.std), model_type=self.spec.model_type,
            agreement=self.spec.agreement,
        )

    def raw_reward(self, score: ItemScore) -> float:
        """The score Compare puts in Bradley-Terry: the reward logit, never normalised."""
        return score.logits[self.spec.reward_index]

    def warm_up(self) -> None:
        """Run a short and a longest-possible batch (blocking), and one per bucket if the backend pads to them."""
        long_text = "warm up " * self.spec.max_length
        for texts in (["warm up"], [long_text, "warm up"]):
            self.run_batch(self.encoder.encode_batch(texts, Truncation.right))
        if self.backend.pad_to_multiple:  # every shape the backend will see, before the server says SERVING
            [longest] = self.encoder.encode_batch([long_text], Truncation.right)
            for length in buckets(self.backend.pad_to_multiple, self.spec.max_length):
                for rows in getattr(self.backend, "row_buckets", [1]):  # CUDA graphs: each batch size too
                    self.run_batch([Encoded(longest.ids[:length], longest.type_ids[:length], False)] * rows)

    def prepare(self, items: Sequence[Item], truncation: Truncation,
                name_of: Callable[[int], str] = "items[{}]".format) -> list[Encoded]:
        """Format and tokenize items (blocking); bad input raises InvalidArgument naming the item."""
        if self.max_text_chars is not None:
            check_text_chars(items, self.max_text_chars, name_of)
        texts = []
        for i, item in enumerate(items):
            try:
                texts.append(format_item(self.spec, item))
            except FormatError as e:
                raise InvalidArgument(f"{name_of(i)}: {e}") from e
        try:
            encoded = self.encoder.encode_batch(texts, truncation)
        except TooLong as e:
            raise InvalidArgument(f"{name_of(e.index)}: {e}") from e
        for i, e in enumerate(encoded):
            # A zero-length row would fail (or corrupt) the whole shared batch, other clients' items too.
            if e.num_tokens == 0:
                raise InvalidArgument(f"{name_of(i)}: no tokens: the text {self.name} reads is empty once formatted "
                                      "and tokenized")
        return encoded

    async def score(self, items: Sequence[Item], options: ScoreOptions, deadline: float,
                    name_of: Callable[[int], str] = "items[{}]".format) -> list[ItemScore]:
        """Score items; ``deadline`` is a ``time.monotonic()`` time."""
        truncation = options.truncation or self.spec.truncation_side
        # Fail fast: under overload the queue stays full, and a rejection should not first wait
        # its turn to be tokenized. submit() checks again (the queue may fill meanwhile).
        self.batcher.check_room(len(items))
        window = self.encoder.window_chars or math.inf  # a long text is tokenized only near the end it keeps
        if sum(min(item_chars(item)[0], window) for item in items) <= INLINE_PREPARE_CHARS:
            encoded = self.prepare(items, truncation, name_of)  # cheaper than a hop to the prep pool and back
        else:
            loop = asyncio.get_running_loop()
            encoded = await loop.run_in_executor(self._prep_pool, self.prepare, items, truncation, name_of)
        futures = self.batcher.submit(encoded, deadline)
        try:
            async with asyncio.timeout(None if deadline == math.inf else max(deadline - time.monotonic(), 0.0)):
                rows = [await futures[0]] if len(futures) == 1 else await asyncio.gather(*futures)
        except TimeoutError as e:
            raise DeadlineExpired(f"deadline passed before {len(items)} items were scored") from e
        return to_scores(rows, encoded, self.spec, options.normalize)


class ModelRegistry:
    """The server's models by name; the first one is the default.

    Example::

        registry = ModelRegistry.load(config, metrics)   # blocking: loads and warms up
        registry.start()                                 # in the event loop
        registry.get("")                                 # the default model
    """

    def __init__(self, models: dict[str, ScoringModel], prep_pool: ThreadPoolExecutor,
                 failed: dict[str, str] | None = None, default: str | None = None,
                 composites: dict[str, CompositeModel] | None = None):
        self.models = models
        self.composites = composites or {}  # named recipes over ``models``, scored like models
        self.failed = dict(failed or {})  # skipped models: name -> why they failed to load
        # The configured default stays the default even when it was skipped: requests for it
        # fail with NOT_FOUND rather than silently getting another model's scores.
        self.default = default or next(iter(models))
        self._prep_pool = prep_pool

    @classmethod
    def load(cls, config: ServiceConfig, metrics: ServiceMetrics, warm_up: bool = True) -> ModelRegistry:
        """Load (and warm up) every configured model; blocking.

        A model that fails raises (``on_model_error=fail``) or is logged and left out
        (``skip``); if no model loads, BundleError lists every failure.
        """
        pool = ThreadPoolExecutor(config.tokenizer_workers, thread_name_prefix="prepare")
        models, failed = {}, {}
        try:
            for source in config.models:
                try:
                    model = ScoringModel.load(source, config, metrics, pool)
                    if warm_up:
                        model.warm_up()
                except Exception as e:
                    if config.on_model_error is not ModelErrorPolicy.skip:
                        raise
                    failed[source.name] = str(e) or type(e).__name__
                    logger.error("model %s failed to load, skipped (on_model_error=skip): %s",
                                 source.name, failed[source.name])
                    continue
                models[source.name] = model
            if not models:
                raise BundleError("no model could be loaded: " + "; ".join(f"{n}: {e}" for n, e in failed.items()))
            composites, lost = build_composites(config.composites, models, failed)
        except BaseException:
            pool.shutdown(wait=False)
            raise
        return cls(models, pool, failed | lost, default=config.models[0].name, composites=composites)

    def get(self, name: str) -> ScoringModel | CompositeModel:
        """Return the named model or composite (empty name: the default); unknown raises ModelNotFound."""
        name = name or self.default
        model = self.models.get(name) or self.composites.get(name)
        if model is None:
            if name in self.failed:
                # The reason (file paths) stays in the server log.
                raise ModelNotFound(f"model {name!r} failed to load and is not served (see the server log)")
            raise ModelNotFound(f"model {name!r} not found (serving {sorted(self.models) + sorted(self.composites)})")
        return model

    def label(self, name: str) -> str:
        """The metric label for a requested model name (bounded: unknown names share one)."""
        name = name or self.default
        return name if name in self.models or name in self.composites else "unknown"

    def infos(self) -> list[ModelInfo]:
        """Every model's info, default first, then the composites."""
        return [m.info for m in (*self.models.values(), *self.composites.values())]

    def start(self) -> None:
        """Start every batcher (in the event loop)."""
        for m in self.models.values():
            m.batcher.start()

    async def stop(self) -> None:
        """Run every accepted item, then stop the batchers and the preparation threads."""
        await asyncio.gather(*(m.batcher.stop() for m in self.models.values()))
        self._prep_pool.shutdown(wait=True)

