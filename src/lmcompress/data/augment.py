"""Offline data augmentation by word replacement, TinyBERT-style (docs/data.md "Augmentation").

Each training example gets ``n_copies`` augmented copies. In a copy, every eligible word (one
that the tokenizer keeps as a single word piece: no sub-word, no special token) is replaced with
probability ``p`` by one of its ``k`` nearest candidates, drawn at random:

* ``mode: embedding``: the ``k`` vocabulary entries nearest to it by cosine similarity in the
  teacher's input-embedding matrix (whole-word, alphabetic entries only);
* ``mode: mlm`` (a model with a masked-LM head): the word is masked in its sentence and the
  ``k`` most probable whole-word predictions are the candidates (TinyBERT's choice for
  single-piece words).

Everything is seeded by ``seed`` and the example's position, so the same settings give the same
copies. :func:`augment_cached` stores the copies with the teacher's logits computed once, in one
JSON-lines file named by a digest of the inputs and settings, written atomically: a re-run with
the same inputs reads it instead of recomputing. :func:`augment_training_split` is what the data
module calls for ``data.augment`` (docs/data.md "Augmentation").
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from lmcompress.data.base import Example

MODES = ("embedding", "mlm")


@dataclass
class AugmentSpec:
    """The augmenter's settings (YAML: ``augment``)."""

    p: float = 0.4
    """Probability that an eligible word is replaced (TinyBERT: 0.4)."""
    n_copies: int = 20
    """Augmented copies per example (TinyBERT: 20); the original is kept besides them.
    ``data.augment.n_copies: 0`` (the default there) switches augmentation off."""
    k: int = 15
    """Candidates per word: the k nearest (TinyBERT: 15)."""
    mode: str = "embedding"
    """embedding: neighbours in the input-embedding space | mlm: masked-LM predictions."""
    seed: int = 0
    """Seeds every draw."""

    def check(self, key: str) -> None:
        """Probability in [0, 1], positive sizes, a known mode."""
        if not 0 <= self.p <= 1:
            raise ValueError(f"{key}.p={self.p}: must be in [0, 1]")
        if self.n_copies < 1 or self.k < 1:
            raise ValueError(f"{key}: n_copies ({self.n_copies}) and k ({self.k}) must be >= 1")
        if self.mode not in MODES:
            raise ValueError(f"{key}.mode={self.mode!r}: choose from {MODES}")


def _whole_word(token: str) -> bool:
    return token.isalpha() and not token.startswith("##")


class Augmenter:
    """Word replacement with a tokenizer and a model's input embeddings (or its MLM head)."""

    def __init__(self, tokenizer: Any, model: Any, spec: AugmentSpec):
        spec.check("augment")
        if spec.mode == "mlm" and getattr(model, "get_output_embeddings", lambda: None)() is None:
            raise ValueError(f"augment.mode=mlm: {type(model).__name__} has no masked-LM head; "
                             "use augment.mode=embedding or a model with an MLM head")
        self.tokenizer, self.model, self.spec = tokenizer, model.eval(), spec
        vocab = tokenizer.get_vocab()
        self.words = {t: i for t, i in vocab.items() if _whole_word(t)
                      and t not in tokenizer.all_special_tokens}
        self._neighbours: dict[str, list[str]] = {}
        self._eligible: dict[str, bool] = {}

    def eligible(self, word: str) -> bool:
        """A word the tokenizer keeps whole (one piece, in the vocabulary, not special)."""
        if word not in self._eligible:
            pieces = self.tokenizer.tokenize(word)
            self._eligible[word] = len(pieces) == 1 and pieces[0] in self.words
        return self._eligible[word]

    def neighbours(self, word: str) -> list[str]:
        """The ``k`` whole-word entries nearest to ``word`` in the input-embedding space."""
        piece = self.tokenizer.tokenize(word)[0]
        if piece not in self._neighbours:
            table = self.model.get_input_embeddings().weight.detach()
            ids = torch.tensor(sorted(self.words.values()))
            vectors = torch.nn.functional.normalize(table[ids], dim=-1)
            query = torch.nn.functional.normalize(table[self.words[piece]], dim=-1)
            order = (vectors @ query).argsort(descending=True).tolist()
            names = self.tokenizer.convert_ids_to_tokens(ids[order].tolist())
            self._neighbours[piece] = [t for t in names if t != piece][: self.spec.k]
        return self._neighbours[piece]

    @torch.no_grad()
    def mlm_candidates(self, words: list[str], position: int) -> list[str]:
        """The ``k`` most probable whole-word fillers of ``words[position]``, masked."""
        masked = [*words[:position], self.tokenizer.mask_token, *words[position + 1:]]
        batch = self.tokenizer(" ".join(masked), return_tensors="pt", truncation=True)
        where = (batch["input_ids"][0] == self.tokenizer.mask_token_id).nonzero()
        if not len(where):
            return []
        logits = self.model(**batch).logits[0, int(where[0])]
        ranked = self.tokenizer.convert_ids_to_tokens(logits.argsort(descending=True).tolist())
        piece = self.tokenizer.tokenize(words[position])[0]
        return [t for t in ranked if t in self.words and t != piece][: self.spec.k]

    def augment_text(self, text: str, rng: random.Random) -> str:
        """One augmented copy of ``text`` (words split on whitespace)."""
        words = text.split()
        out = list(words)
        for i, word in enumerate(words):
            if not self.eligible(word) or rng.random() >= self.spec.p:
                continue
            options = (self.mlm_candidates(words, i) if self.spec.mode == "mlm"
                       else self.neighbours(word))
            if options:
                out[i] = rng.choice(options)
        return " ".join(out)

    def augment(self, examples: Sequence[Example]) -> list[Example]:
        """Each example followed by its ``n_copies`` copies (labels and pairs kept)."""
        out = []
        for index, example in enumerate(examples):
            out.append(example)
            if not isinstance(example.text, str):
                continue  # token classification: labels are per word, not augmented
            rng = random.Random(f"{self.spec.seed}:{index}")
            for copy in range(self.spec.n_copies):
                pair = example.text_pair
                out.append(Example(
                    self.augment_text(example.text, rng),
                    self.augment_text(pair, rng) if isinstance(pair, str) else pair,
                    example.label, f"{example.where or index} (augmented copy {copy + 1})"))
        return out


def cache_key(examples: Sequence[Example], spec: AugmentSpec, model_id: str) -> str:
    """A digest of the inputs, the settings and the model's identity (e.g. its weights digest)."""
    digest = hashlib.sha256(json.dumps([asdict(spec), model_id]).encode())
    for e in examples:
        digest.update(json.dumps([e.text, e.text_pair, e.label]).encode())
    return digest.hexdigest()[:16]


def augment_cached(examples: Sequence[Example], augmenter: Augmenter, model_id: str,
                   cache_dir: str | Path,
                   logits_fn: Callable[[list[Example]], torch.Tensor] | None = None
                   ) -> tuple[list[Example], torch.Tensor | None, Path]:
    """The augmented examples and the teacher's logits on them, computed once and cached.

    ``logits_fn`` maps examples to a ``(len, num_outputs)`` tensor (the teacher's logits); the
    file ``<cache_dir>/augment_<digest>.jsonl`` holds one example per line with its logits.
    """
    path = Path(cache_dir) / f"augment_{cache_key(examples, augmenter.spec, model_id)}.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        out = [Example(r["text"], r["text_pair"], r["label"], r["where"]) for r in rows]
        logits = (torch.tensor([r["logits"] for r in rows]) if rows and rows[0].get("logits")
                  is not None else None)
        return out, logits, path
    out = augmenter.augment(examples)
    logits = logits_fn(out) if logits_fn is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    with staging.open("w") as f:
        for i, e in enumerate(out):
            f.write(json.dumps({"text": e.text, "text_pair": e.text_pair, "label": e.label,
                                "where": e.where, "logits": None if logits is None
                                else logits[i].tolist()}) + "\n")
    staging.replace(path)
    return out, logits, path


def model_identity(model: torch.nn.Module) -> str:
    """A digest of every weight of ``model`` (the augmenter's candidates depend on them)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def augment_training_split(examples: Sequence[Example], settings: dict[str, Any],
                           tokenizer: Any, model_ref: str, cache_dir: str | Path | None,
                           kind: str) -> tuple[list[Example], dict[str, Any]]:
    """``data.augment`` applied to the training examples: the copies and what was done.

    ``settings`` are ``AugmentSpec``'s fields plus ``model`` (the model whose input embeddings
    or masked-LM head give the candidates; ``model_ref``, the data's tokenizer reference, when
    null). Refused by key: unknown fields, values out of range, a task whose labels are per
    word (token classification), ``mode: mlm`` with a model without a masked-LM head.
    """
    from transformers import AutoModel, AutoModelForMaskedLM

    from lmcompress.models.hub import resolve_model_path

    settings = dict(settings)
    ref = settings.pop("model", None) or model_ref
    unknown = sorted(set(settings) - set(AugmentSpec.__dataclass_fields__))
    if unknown:
        raise ValueError(f"data.augment: unknown key(s) {unknown}; known: "
                         f"{sorted([*AugmentSpec.__dataclass_fields__, 'model'])}")
    spec = AugmentSpec(**settings)
    spec.check("data.augment")
    if kind == "token_classification":
        raise ValueError("data.augment: a token-classification task's labels are per word, and "
                         "word replacement would keep labels that no longer fit; set "
                         "data.augment.n_copies=0")
    path = resolve_model_path(ref)
    if spec.mode == "mlm":
        try:  # a checkpoint without the head loads with a randomly initialised one: refuse it
            model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
            missing = sorted(info["missing_keys"])
        except (ValueError, OSError) as err:
            model, missing = None, [str(err)]
        if missing:
            raise ValueError(f"data.augment.mode=mlm: data.augment.model={ref!r} has no "
                             f"masked-LM head (missing: {missing[:4]}); use "
                             "data.augment.mode=embedding or a model saved with its MLM head")
    else:
        model = AutoModel.from_pretrained(path)
    augmenter = Augmenter(tokenizer, model, spec)
    if cache_dir is None:
        out, where = augmenter.augment(examples), None
    else:
        out, _, where = augment_cached(examples, augmenter, model_identity(model),
                                       Path(cache_dir) / "augment")
    return out, {"original": len(examples), "copies": len(out) - len(examples),
                 "model": ref, "cache": None if where is None else str(where), **asdict(spec)}
