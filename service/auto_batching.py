"""The auto values of the batching settings, per provider (and backend), with the measurements behind them.

:class:`~rewardserve.service.config.ServiceConfig` uses them where a setting is left at auto.
"""

# Auto hold of a partial batch (max_wait_ms): on CPU, batches grow by themselves while every
# inference worker is busy, and holding an idle worker only adds latency; a GPU gains from a few ms.
AUTO_WAIT_MS = {"cpu": 0.0, "cuda": 5.0}
# Auto token budget per batch (raised to max_length). On CPU, batching buys nothing for long
# texts (inference is compute-bound: offline MiniLM fp32 ran 25 items/s at batch 1, 19 at batch
# 64) while padding costs a lot; a small budget still groups short texts. Measured with MiniLM on
# HH dialogues (2 cores, fp32, 64 / 4 clients): 16384 -> 21 / 30 items/s at padding efficiency
# 0.55 / 0.63; 1024 -> 23 / 14 at 0.91 / 0.64; 256 -> 30 / 28 at 0.99 / 0.95. GPUs need big batches.
# OpenVINO bf16 gains from batches (MiniLM, HH, 2 x 1 thread: 46 items/s at batch 1, 94 at 16; ORT fp32 55 -> 39).
# Packed rows (export/packed.py) have almost no padding, so a batch takes the queue's items up to
# items x longest <= this budget (no padding floor applies).
AUTO_BATCH_TOKENS = {"cpu": 256, "cuda": 16384, "openvino": 2048, "openvino-packed": 4096}
# Auto padding floor (0 for packed rows): a batch grows only while real / padded tokens stays at least this. On CPU
# padding is paid in full (OpenVINO bf16, 64 clients, 2 x 1 thread: batches of 10-16 at padding
# efficiency 0.74 on HH and 0.52 on tweets reached 0.72x / 0.43x of the sorted offline limit); a
# GPU gains from the batch more than it loses to padding (and pads to length buckets anyway).
AUTO_PADDING_FLOOR = {"cpu": 0.8, "cuda": 0.0}
# Auto inline_batch_ms: on CPU a batch this quick runs on the event loop, since handing it to a
# thread and waking the loop back costs ~0.1-0.4 ms of CPU on this VM (tiny BERT, one process, 256
# single-item clients: the batcher stage fell from +306 to +162 us per request; benchmarks/README.md,
# "Issue 12 and 13 runs"); a GPU keeps the loop free for the next batch instead.
AUTO_INLINE_MS = {"cpu": 2.0, "cuda": 0.0}
# gRPC listeners per process (grpc_listeners; service/edge/listeners.py): grpc.aio accepts one call per
# event-loop turn and server, so single-item floods ran batches of 1.05. Tiny bundle, 2 processes,
# this 2-core VM (benchmarks/README.md, "Several gRPC listeners" and "Sixteen listeners"): 4 beat 1
# at 256 clients in 4 of 5 repetitions; 16 beat 4 in 4 of 5 (by 2-19%, mean batch 2.3-2.7 against
# 1.7-2.3); a lone client, and toxicity at 64 clients, ran alike. The bench's clients open 8
# connections per process, so more than 16 listeners would mostly sit without one.
DEFAULT_GRPC_LISTENERS = 16
