"""The bad requests the reliability suite sends: hypothesis strategies over every RPC.

Random Unicode (NUL, controls, BOM, combining marks, emoji), very long and empty texts, huge
item counts, unknown models, raw enum values, malformed chat messages, unknown option fields,
and raw bytes on the wire: garbage, and otherwise valid requests holding invalid UTF-8.
Each example is a :class:`Call` whose payload is the serialized request (bytes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st

from rewardserve.formatting import ROLES
from rewardserve.v1 import reward_pb2 as pb

NASTY = "\x00\x01\x1b\x7f\n\r\t \u00a0\u200b\u200d\u202e\ufeff\ufffd\u0301\u0345e\u00e9\u4e16\U0001f600\U0010ffff"
MODELS = ("", "pairwise", "classifier")


@dataclass(frozen=True)
class Call:
    """One generated call: method, wire bytes (a list for streams) and the shape a success must have."""

    kind: str  # what the generator made, for the code statistics
    method: str
    payload: bytes | tuple[bytes, ...]
    expect_items: int | None = None  # Score / Compare: scores or comparisons in a success
    request_id: str | None = None


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, hand-encoded (so its bytes need not be valid UTF-8)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# Precomputed, so drawing them is cheap: very long texts (past max_text_chars too) and huge item counts.
LONG_TEXTS = tuple(ch * n for ch in ("a", "word ", "\x00", "\U0001f600", "e\u0301") for n in (2_000, 10_000, 250_000))
HUGE_COUNTS = (65, 1025, 5000, 40_000)  # the server under test takes at most 1024 items per request


def _corpus(n: int = 4000, seed: int = 0) -> tuple[str, ...]:
    """Random strings over all of Unicode but surrogates, and over :data:`NASTY`; fixed by ``seed``.

    Drawing one of these is a single choice, where ``st.text`` draws every character: half the
    texts come from here, so 10,000 calls stay cheap to generate.
    """
    rng = random.Random(seed)
    planes = (0x7F, 0x800, 0x10000, 0x110000)

    def char() -> str:
        while True:
            c = rng.randrange(rng.choice(planes))
            if not 0xD800 <= c <= 0xDFFF:
                return chr(c)

    return tuple("".join(rng.choice(NASTY) if k % 2 else char() for _ in range(rng.randint(1, 60)))
                 for k in range(n))


CORPUS = _corpus()


def _huge(n: int, text: str, model: str) -> bytes:
    return pb.ScoreRequest(items=[pb.Item(text=text)] * n, options=pb.ScoreOptions(model=model)).SerializeToString()


def strategies():
    """The call strategy (one generated call).

    Kept cheap to draw (no flatmap, precomputed big values): the test sends 10,000 calls.
    """
    any_text = st.text(max_size=24)  # any code point but surrogates
    nasty_text = st.text(alphabet=st.sampled_from(NASTY), max_size=24)
    corpus = st.integers(0, len(CORPUS) - 1).map(CORPUS.__getitem__)
    # one_of picks branches uniformly: repeats weight them (about 1 in 10 empty, 1 in 20 long).
    # Indices, not the strings: hypothesis may repr a strategy, and these are megabytes.
    long_text = st.integers(0, len(LONG_TEXTS) - 1).map(LONG_TEXTS.__getitem__)
    text = st.one_of(*[any_text] * 3, *[nasty_text] * 3, *[corpus] * 12, st.just(""), st.just(""), long_text)
    role = st.one_of(st.sampled_from(ROLES), st.text(max_size=10))
    message = st.builds(lambda r, c: pb.ChatMessage(role=r, content=c), role, text)
    item = st.one_of(
        st.builds(lambda t: pb.Item(text=t), text),
        st.builds(lambda p, r: pb.Item(pair=pb.PromptResponse(prompt=p, response=r)), text, text),
        st.builds(lambda ms: pb.Item(conversation=pb.Conversation(messages=ms)), st.lists(message, max_size=3)),
        st.just(pb.Item()),  # no input set
    )
    model = st.one_of(st.sampled_from(MODELS), st.sampled_from(MODELS), st.text(max_size=12))
    truncation = st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(-(2**31), 2**31 - 1))  # raw enum values
    options = st.builds(lambda m, t, n: pb.ScoreOptions(model=m, truncation=t, normalize=n),
                        model, truncation, st.booleans())
    score = st.builds(lambda its, o, rid: pb.ScoreRequest(items=its, options=o, request_id=rid),
                      st.lists(item, max_size=4), options, st.text(max_size=12))
    # Weird but valid: every text non-empty, a served model, a real truncation mode. These reach the
    # tokenizer and the model, where odd Unicode could break something.
    filled = st.one_of(any_text.filter(bool), nasty_text.filter(bool), *[corpus] * 4, long_text)
    valid_item = st.one_of(
        st.builds(lambda t: pb.Item(text=t), filled),
        st.builds(lambda p, r: pb.Item(pair=pb.PromptResponse(prompt=p, response=r)), text, filled),
        st.builds(lambda ms: pb.Item(conversation=pb.Conversation(messages=ms)),
                  st.lists(st.builds(lambda r, c: pb.ChatMessage(role=r, content=c), st.sampled_from(ROLES), text),
                           min_size=1, max_size=3)),
    )
    valid_options = st.builds(lambda m, t, n: pb.ScoreOptions(model=m, truncation=t, normalize=n),
                              st.sampled_from(MODELS), st.sampled_from([0, 1, 2]), st.booleans())
    valid = st.builds(lambda its, o, rid: pb.ScoreRequest(items=its, options=o, request_id=rid),
                      st.lists(valid_item, min_size=1, max_size=4), valid_options, st.text(max_size=12))
    valid_compare = st.builds(
        lambda p, pairs, o: pb.CompareRequest(prompt=p, pairs=pairs, options=o), text,
        st.lists(st.builds(lambda a, b: pb.ResponsePair(response_a=a, response_b=b), filled, filled),
                 min_size=1, max_size=3), valid_options)
    huge = [(_huge(n, t, m), n) for n in HUGE_COUNTS for t in ("x", "") for m in MODELS]
    bad_utf8 = st.one_of(
        st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3)
        .map(lambda s: s.encode("utf-8", "surrogatepass")),  # lone surrogates
        st.binary(min_size=1, max_size=12).filter(lambda b: not _is_utf8(b)),
    )
    # A valid request plus: an item whose text is invalid UTF-8, options.model invalid UTF-8, an
    # unknown options field, or a truncation value beyond int32 on the wire.
    raw_score = st.one_of(
        st.builds(lambda r, b: r.SerializeToString() + _field(1, _field(1, b)), score, bad_utf8),
        st.builds(lambda r, b: r.SerializeToString() + _field(2, _field(1, b)), score, bad_utf8),
        st.builds(lambda r, n: r.SerializeToString() + _field(2, _varint(15 << 3) + _varint(n)), score,
                  st.integers(0, 2**63)),
        st.builds(lambda r, n: r.SerializeToString() + _field(2, _varint(2 << 3) + _varint(n)), score,
                  st.integers(2**31, 2**64 - 1)),
    )
    compare = st.builds(lambda p, pairs, o: pb.CompareRequest(prompt=p, pairs=pairs, options=o), text,
                        st.lists(st.builds(lambda a, b: pb.ResponsePair(response_a=a, response_b=b), text, text),
                                 max_size=3), options)
    garbage = st.binary(max_size=200)
    unary = ("Score", "Compare", "GetModel", "ListModels")
    stream_msg = st.one_of(score.map(lambda r: r.SerializeToString()), raw_score, garbage)
    return st.one_of(
        *[score.map(lambda r: Call("score", "Score", r.SerializeToString(), len(r.items), r.request_id))] * 2,
        *[valid.map(lambda r: Call("weird but valid score", "Score", r.SerializeToString(), len(r.items),
                                   r.request_id))] * 3,
        valid_compare.map(lambda r: Call("weird but valid compare", "Compare", r.SerializeToString(), len(r.pairs))),
        st.integers(0, len(huge) - 1).map(lambda i: Call("huge item count", "Score", *huge[i])),
        raw_score.map(lambda b: Call("raw score (invalid UTF-8 / fields)", "Score", b)),
        compare.map(lambda r: Call("compare", "Compare", r.SerializeToString(), len(r.pairs))),
        model.map(lambda m: Call("get model", "GetModel", pb.GetModelRequest(model=m).SerializeToString())),
        st.just(Call("list models", "ListModels", b"")),
        st.builds(lambda m, b: Call("garbage bytes", m, b), st.sampled_from(unary), garbage),
        st.lists(stream_msg, min_size=1, max_size=4).map(lambda ms: Call("stream", "ScoreStream", tuple(ms))),
    )


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
