"""Tokenizers trained inside the tests (milliseconds): a byte-level BPE like RoBERTa's, and a
lower-casing WordPiece like BERT's, saved as fast tokenizer folders a model reference can name.

Also the tiny random RoBERTa teacher / BERT student specs that use them (docs/ckd.md §12).
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import AutoConfig, PreTrainedTokenizerFast

from lmcompress.data import train_tokenizer
from lmcompress.data.synthetic import SyntheticSource

EXTRA = ["The café's naïve chef didn't say... \"wow\"!", "Straße-Test: 3.5 stars, ok?"]


def corpus() -> list[str]:
    """The training sentences of ``task=tiny`` plus a few with accents and punctuation."""
    return [e.text for e in SyntheticSource(seed=0, n_train=64, n_validation=32,
                                            n_test=32).load("train")] + EXTRA


def train_bpe(folder: Path, vocab_size: int = 400, trim_offsets: bool = True) -> str:
    """A RoBERTa-like byte-level BPE on :func:`corpus` (``lmcompress.data.train_tokenizer``)."""
    return train_tokenizer.train_bpe(corpus(), folder, vocab_size, trim_offsets)


def train_wordpiece(folder: Path, vocab_size: int = 300) -> str:
    """A BERT-like lower-casing WordPiece ([CLS] ... [SEP] ... [SEP]), saved to ``folder``."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                                special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    return _save(fast, folder, "bert")


def _save(tokenizer: PreTrainedTokenizerFast, folder: Path, model_type: str) -> str:
    """The tokenizer plus a config.json: a folder a model reference can name."""
    tokenizer.save_pretrained(folder)
    AutoConfig.for_model(model_type, vocab_size=len(tokenizer)).save_pretrained(folder)
    return str(folder)


def roberta_teacher(tokenizer: str, vocab_size: int) -> list[str]:
    """Overrides of ``teacher=tiny`` for a random 2-layer RoBERTa reading ``tokenizer``."""
    return ["teacher=tiny", f"teacher.tokenizer={tokenizer}", "teacher.config.model_type=roberta",
            f"teacher.config.vocab_size={vocab_size}", "+teacher.config.pad_token_id=1",
            "+teacher.config.bos_token_id=0", "+teacher.config.eos_token_id=2",
            "+teacher.config.type_vocab_size=1", "teacher.config.max_position_embeddings=130"]
