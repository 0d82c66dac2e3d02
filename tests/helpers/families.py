"""Tiny random configs of every supported encoder family (no download), for the family tests.

``FAMILIES`` maps a family to the ``config`` keys of a 4-layer, 32-dim, 4-head model; what makes
each family itself is switched on (ELECTRA's embedding projection, DeBERTa-v3's relative
attention with position buckets and a normalised shared table, ModernBERT's alternating
local / global attention with a window smaller than the inputs, mean pooling).
"""

from __future__ import annotations

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

COMMON = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
          "intermediate_size": 64, "max_position_embeddings": 64}
FAMILIES: dict[str, dict] = {
    "bert": {"model_type": "bert", **COMMON},
    "roberta": {"model_type": "roberta", **COMMON, "max_position_embeddings": 66,
                "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2},
    "electra": {"model_type": "electra", **COMMON, "embedding_size": 16},
    "deberta-v2": {"model_type": "deberta-v2", **COMMON, "relative_attention": True,
                   "pos_att_type": ["p2c", "c2p"], "position_buckets": 8,
                   "max_relative_positions": -1, "norm_rel_ebd": "layer_norm",
                   "share_att_key": True, "position_biased_input": False, "type_vocab_size": 0},
    "mpnet": {"model_type": "mpnet", **COMMON, "max_position_embeddings": 66,
              "relative_attention_num_buckets": 32, "pad_token_id": 1},
    "distilbert": {"model_type": "distilbert", "dim": 32, "n_layers": 4, "n_heads": 4,
                   "hidden_dim": 64, "max_position_embeddings": 64},
    "modernbert": {"model_type": "modernbert", **COMMON, "global_attn_every_n_layers": 3,
                   "local_attention": 4, "classifier_pooling": "mean", "pad_token_id": 0,
                   "bos_token_id": 2, "eos_token_id": 3, "cls_token_id": 2, "sep_token_id": 3},
}
"""Family name -> tiny config keys (``model_type`` first)."""

NAMES = list(FAMILIES)


def family_config(family: str, vocab_size: int = 60, num_labels: int = 2, **overrides):
    """The tiny config of ``family`` (``overrides`` win)."""
    keys = {**FAMILIES[family], "vocab_size": vocab_size, "num_labels": num_labels, **overrides}
    return AutoConfig.for_model(keys.pop("model_type"), **keys)


def family_model(family: str, head: str = "sequence", seed: int = 0, **overrides):
    """A random tiny ``family`` model in eval mode; ``head`` is ``sequence`` or ``token``."""
    torch.manual_seed(seed)
    config = family_config(family, **overrides)
    auto = (AutoModelForSequenceClassification if head == "sequence"
            else AutoModelForTokenClassification)
    return auto.from_config(config).eval()


def batch(seed: int = 0, size: int = 3, length: int = 12, vocab: int = 60):
    """Random ``input_ids`` / ``attention_mask`` with right padding of different lengths."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (size, length), generator=gen)
    lengths = torch.tensor([length - 3 * i for i in range(size)]).clamp(min=4)
    mask = (torch.arange(length)[None] < lengths[:, None]).long()
    ids[:, 0] = 2
    return {"input_ids": ids * mask + (1 - mask) * 0, "attention_mask": mask}


NARROW: dict[str, dict] = {
    "distilbert": {"dim": 16, "n_layers": 2, "n_heads": 2, "hidden_dim": 32},
}
"""Family -> config keys of a narrower 2-layer / 16-dim student (default: the COMMON names)."""


def narrow_keys(family: str) -> dict:
    """``student.config`` of a 2-layer, 16-dim, 2-head student of ``family``."""
    keys = {**FAMILIES[family], "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 32}
    if family in NARROW:
        keys = {"model_type": family, **FAMILIES[family], **NARROW[family]}
    if family == "electra":
        keys["embedding_size"] = 8
    return keys


def save_family_teacher(family: str, out, vocab_size: int = 30522, **overrides):
    """Save a tiny random ``family`` sequence classifier and the embedded MiniLM tokenizer."""
    from lmcompress.models.hub import load_tokenizer

    # positions for data.max_length=128 (RoBERTa and MPNet offset them by padding_idx + 1)
    family_model(family, vocab_size=vocab_size, max_position_embeddings=130,
                 **overrides).save_pretrained(out)
    load_tokenizer("embedded:minilm-l6").save_pretrained(out)
    return out
