"""A tiny hand-built toxicity classifier whose P(toxic) rises with the share of "toxic" words.

Random tiny weights give nearly equal scores to every text, which tests nothing about a filter
or an RL loop. This BERT has its weights set by hand instead, so its output is a known function
of the input: attention is uniform (zero queries and keys), values and output projections are
identities, feed-forward blocks add nothing and position embeddings are zero, so the [CLS]
vector is the LayerNorm of [CLS] plus the mean of all token embeddings. Tokens of the TOXIC
words carry a component along ``e0 - e1``; the pooler is the identity and the head reads
``e0 - e1``: the non-toxic logit (the reward) falls, and P(toxic) rises, monotonically with the
fraction of toxic tokens. It goes through the real export pipeline like any bundle.
"""

from __future__ import annotations

from pathlib import Path

TOXIC = ("crap", "damn", "hell", "hate", "loser", "stupid", "ugly", "idiot")
TOXIC_SHIFT = 3.0  # size of a toxic token's e0 - e1 component before LayerNorm
HEAD_SCALE = 8.0  # logit = +-HEAD_SCALE * (tanh(h0) - tanh(h1))
CLEAN_MARGIN = 2.0  # logits of a text without toxic words: toxic -2, non_toxic (the reward) +2


def make_word_toxicity_bundle(root: Path, toxic: tuple[str, ...] = TOXIC) -> Path:
    """Write the bundle under ``root`` and export it to ONNX (fp32); return the ONNX bundle."""
    import torch
    from rewardserve.export.config import ExportConfig
    from rewardserve.export.pipeline import export_bundle
    from rewardserve.training.tiny import make_tiny_bundle
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    bundle = make_tiny_bundle(root / "words", "bert", "classifier")  # labels: 0 toxic, 1 non_toxic
    model = AutoModelForSequenceClassification.from_pretrained(bundle)
    tok = AutoTokenizer.from_pretrained(bundle)
    hidden = model.config.hidden_size
    eye, zero = torch.eye(hidden), torch.zeros(hidden)
    base = torch.tensor([0.0, 0.0] + [(-1.0) ** i for i in range(hidden - 2)])
    toxic_ids = sorted({i for w in toxic for i in tok(w, add_special_tokens=False)["input_ids"]})
    with torch.no_grad():
        emb = model.bert.embeddings
        emb.word_embeddings.weight.copy_(base.expand_as(emb.word_embeddings.weight))
        emb.word_embeddings.weight[toxic_ids, 0] = TOXIC_SHIFT
        emb.word_embeddings.weight[toxic_ids, 1] = -TOXIC_SHIFT
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        for i, layer in enumerate(model.bert.encoder.layer):
            att = layer.attention
            for lin in (att.self.query, att.self.key):
                lin.weight.zero_()
                lin.bias.zero_()
            att.self.value.weight.copy_(eye)
            att.self.value.bias.zero_()
            # layer 0 mixes the mean of the tokens into [CLS]; layer 1 passes it through
            att.output.dense.weight.copy_(eye if i == 0 else torch.zeros_like(eye))
            att.output.dense.bias.zero_()
            layer.output.dense.weight.zero_()
            layer.output.dense.bias.zero_()
            for norm in (emb.LayerNorm, att.output.LayerNorm, layer.output.LayerNorm):
                norm.weight.fill_(1.0)
                norm.bias.zero_()
        model.bert.pooler.dense.weight.copy_(eye)
        model.bert.pooler.dense.bias.copy_(zero)
        direction = torch.zeros(hidden)
        direction[0], direction[1] = 1.0, -1.0
        model.classifier.weight.copy_(torch.stack([HEAD_SCALE * direction, -HEAD_SCALE * direction]))
        model.classifier.bias.copy_(torch.tensor([-CLEAN_MARGIN, CLEAN_MARGIN]))  # clean text: P(toxic) ~ 0.02
    model.save_pretrained(bundle)
    out = root / "words-onnx"
    export_bundle(ExportConfig(bundle=bundle, out=out, precisions=("fp32",), throughput=False, builtin_texts=True, max_texts=8,
                               parity_batch_size=4))
    return out
