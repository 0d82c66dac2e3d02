"""Label conventions shared by data, losses, metrics and AMoC (no imports: any layer may use it).

``IGNORE_INDEX`` marks a token label that no loss or metric counts: later sub-tokens of a word,
special tokens and padding of token-classification batches (docs/data.md). It is the value
transformers' token collator pads labels with and ``F.cross_entropy`` ignores by default.
"""

IGNORE_INDEX = -100
