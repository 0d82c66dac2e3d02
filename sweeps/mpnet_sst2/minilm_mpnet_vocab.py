"""Write all-MiniLM-L6-v2 re-indexed to the MPNet tokenizer: the cross-family student.

The distill stage needs teacher and student to tokenize identically (CKD compares token
positions). all-mpnet-base-v2's vocabulary is BERT-uncased's 30,522 word pieces with four special
tokens put in front (<s> <pad> </s> <unk>) and <mask> at the end; lower-casing and word-piece
splitting are the same. So MiniLM-L6 (a BERT-uncased model) becomes a model of the MPNet
tokenizer by reordering the rows of its word-embedding matrix by token string, with
<s> = [CLS], </s> = [SEP], <pad> = [PAD], <unk> = [UNK], <mask> = [MASK]. Nothing is trained
or approximated: a sentence gives the same sequence of embedding rows through either tokenizer
(checked below on a probe). The general case (different word pieces) is CKD across tokenizers.

    python sweeps/mpnet_sst2/minilm_mpnet_vocab.py outputs/artifacts/students/minilm_l6_mpnet_vocab
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoModel

from lmcompress.models.hub import load_tokenizer, resolve_model_path

SPECIALS = {"<s>": "[CLS]", "</s>": "[SEP]", "<pad>": "[PAD]", "<unk>": "[UNK]",
            "<mask>": "[MASK]"}
PROBE = "A gripping, well-acted film; the ending isn't earned. Straße naïve café 1998!"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    teacher_tok = load_tokenizer("embedded:mpnet-base")
    student_tok = load_tokenizer("embedded:minilm-l6")
    model = AutoModel.from_pretrained(resolve_model_path("embedded:minilm-l6"))
    old_vocab, new_vocab = student_tok.get_vocab(), teacher_tok.get_vocab()
    index = torch.empty(len(new_vocab), dtype=torch.long)
    for token, new_id in new_vocab.items():
        index[new_id] = old_vocab[SPECIALS.get(token, token)]
    old = model.get_input_embeddings().weight.data
    new = torch.nn.Embedding(len(new_vocab), old.shape[1], padding_idx=teacher_tok.pad_token_id)
    new.weight.data.copy_(old[index])
    model.set_input_embeddings(new)
    model.config.vocab_size = len(new_vocab)
    model.config.pad_token_id = teacher_tok.pad_token_id
    a, b = teacher_tok(PROBE)["input_ids"], student_tok(PROBE)["input_ids"]
    if len(a) != len(b) or not torch.equal(new.weight.data[a], old[b]):
        raise SystemExit(f"tokenizers disagree on the probe: {a} vs {b}")
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    teacher_tok.save_pretrained(args.out)
    print(f"wrote {args.out}: {len(new_vocab)} rows, probe of {len(a)} tokens identical")


if __name__ == "__main__":
    main()
