"""Tiny random BERT models and in-memory splits for the AMoC tests (no tokenizer, no files)."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification, as_mixcnn_config

LENGTH, VOCAB = 12, 60


def bert_config(layers: int = 4, num_labels: int = 2) -> BertConfig:
    return BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=layers,
                      num_attention_heads=2, intermediate_size=32, num_labels=num_labels)


def tiny_model(head: str, layers: int = 4, num_labels: int = 2, seed: int = 0):
    """``mix`` (scalar mix + CNN), ``pooler`` (BERT sequence head) or ``token`` (tagging)."""
    torch.manual_seed(seed)
    config = bert_config(layers, num_labels)
    if head == "mix":
        config = as_mixcnn_config(config)
        config.input_length = LENGTH
        model = ScalarMixCNNForSequenceClassification(config)
        with torch.no_grad():  # distinct mix weights, so dropping the wrong ones would show
            model.mix.weights.copy_(torch.linspace(-1.0, 1.0, layers + 1))
    elif head == "pooler":
        model = BertForSequenceClassification(config)
    else:
        model = BertForTokenClassification(config)
    return model.eval()


def examples(n: int, seed: int = 0, token_labels: bool = False, labels: bool = True,
             num_labels: int = 2) -> list[dict]:
    """Feature dicts of random lengths (padding matters), like a tokenised split."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(4, LENGTH + 1, (1,), generator=gen))
        ids = [2] + torch.randint(5, VOCAB, (length - 2,), generator=gen).tolist() + [3]
        row = {"input_ids": ids, "attention_mask": [1] * length, "index": i}
        if labels and token_labels:
            tags = torch.randint(0, num_labels, (length,), generator=gen).tolist()
            row["labels"] = [-100] + tags[1:-1] + [-100]
        elif labels:
            row["labels"] = int(torch.randint(0, num_labels, (1,), generator=gen))
        out.append(row)
    return out


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    """Pad to the fixed length (the mix head needs it), labels with -100."""
    def pad(values, fill):
        return torch.tensor([v + [fill] * (LENGTH - len(v)) for v in values])

    batch = {"input_ids": pad([r["input_ids"] for r in rows], 0),
             "attention_mask": pad([r["attention_mask"] for r in rows], 0),
             "index": torch.tensor([r["index"] for r in rows])}
    if "labels" in rows[0]:
        labels = [r["labels"] for r in rows]
        batch["labels"] = pad(labels, -100) if isinstance(labels[0], list) else torch.tensor(
            labels)
    return batch


def cached_candidate(base, removed: tuple[int, ...], kind: str, rule: str = "official"):
    """A 4-layer ``base``'s caches for removing ``removed``, and a factory of the smaller model.

    Returns ``(start, train, dev, model)``: the first changed layer, the training and dev caches
    of the states that candidate needs, and ``model()`` building the smaller, partly trainable
    model (shared by the cache tests of BERT and of every family).
    """
    from lmcompress.amoc.cache import batch_plan, build_cache, states_needed
    from lmcompress.amoc.candidates import Candidate, first_changed, trainable_parts
    from lmcompress.amoc.train import set_trainable
    from lmcompress.models.surgery import drop_layers

    candidate = Candidate(removed)
    start = first_changed(4, candidate, rule)
    keep = states_needed(base, [start])
    token = kind == "token_classification"
    train = build_cache(base, "train", examples(20, 0, token, num_labels=3), collate,
                        batch_plan(20, 8, seed=3), keep, kind)
    dev = build_cache(base, "dev", examples(10, 1, token, labels=False), collate,
                      batch_plan(10, 4), keep, kind, special_ids=[0, 2, 3])

    def model():
        smaller = drop_layers(base, candidate.removed)
        kept = [i for i in range(4) if i not in candidate.removed]
        set_trainable(smaller, trainable_parts(4, candidate, rule), kept)
        return smaller

    return start, train, dev, model
