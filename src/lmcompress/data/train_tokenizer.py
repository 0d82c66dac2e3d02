"""Train a RoBERTa-like byte-level BPE tokenizer on the generated task, offline, in a second.

For distillation across tokenizers (docs/ckd.md §12): a teacher whose tokenizer is not the
student's WordPiece. ``python -m lmcompress.data.train_tokenizer <folder>`` writes a fast
tokenizer (``<s> A </s></s> B </s>``, ids 0-4 = <s> <pad> </s> <unk> <mask>, as RoBERTa's) and a
RoBERTa ``config.json`` into ``<folder>``, so ``model.tokenizer=<folder>`` can name it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, PreTrainedTokenizerFast

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_bpe(texts: Iterable[str], folder: str | Path, vocab_size: int = 2000,
              trim_offsets: bool = True) -> str:
    """Train on ``texts`` and save to ``folder``; returns the folder as a model reference.

    ``trim_offsets=False``: a token's character span includes the space before it (``Ġword``).
    The vocabulary has at most ``vocab_size`` entries (fewer on a small corpus).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
        trim_offsets=trim_offsets, add_prefix_space=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   sep_token="</s>", cls_token="<s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>",
                                   model_input_names=["input_ids", "attention_mask"])
    fast.save_pretrained(folder)
    AutoConfig.for_model("roberta", vocab_size=len(fast)).save_pretrained(folder)
    return str(folder)


def main(argv: list[str] | None = None) -> None:
    """CLI: train on the generated task's training sentences (``SyntheticSource`` defaults)."""
    from lmcompress.data.synthetic import SyntheticSource

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="output folder (created)")
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="generated task seed")
    args = parser.parse_args(argv)
    if args.vocab_size < len(SPECIALS) + 256:
        parser.error(f"--vocab-size={args.vocab_size}: needs at least {len(SPECIALS) + 256} "
                     "(the specials and the 256 byte symbols)")
    texts = [e.text for e in SyntheticSource(seed=args.seed).load("train")]
    folder = train_bpe(texts, args.folder, args.vocab_size)
    print(f"{folder}: {len(PreTrainedTokenizerFast.from_pretrained(folder))} tokens")


if __name__ == "__main__":
    main()
