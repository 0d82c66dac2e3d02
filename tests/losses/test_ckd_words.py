"""CKD across tokenizers (docs/ckd.md §12): words, pooling, the stage, refusals, and the
same-tokenizer path bit for bit against the committed reference."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from same_tokenizer_case import summary
from tiny_tokenizers import EXTRA, corpus, roberta_teacher, train_bpe, train_wordpiece
from transformers import AutoTokenizer

from lmcompress.data.words import align, check_two_tokenizers
from lmcompress.losses import TermInputs
from lmcompress.losses.ckd import ckd_family, ckd_terms
from lmcompress.losses.ckd.words import pool_words
from lmcompress.utils.instantiate import instantiate_plain

FIXTURE = Path(__file__).parents[1] / "fixtures" / "ckd_same_tokenizer_7f91590.json"
REFERENCE = "7f91590"  # the code before CKD across tokenizers existed


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """(BPE folder, WordPiece folder), trained on the tiny task's sentences."""
    root = tmp_path_factory.mktemp("tokenizers")
    return train_bpe(root / "bpe"), train_wordpiece(root / "wordpiece")


def _case_output(src: Path) -> dict:
    """same_tokenizer_case.py's exact values with ``src`` first on the path, one thread."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("same_tokenizer_case.py"))],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_same_tokenizer_loss_equals_the_reference_commit_bit_for_bit(tmp_path):
    """Every term, the total and the gradients of the training path equal commit 7f91590's,
    both computed here (bits of float32 kernels differ between CPUs, not between commits)."""
    root = Path(__file__).parents[2]
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        pytest.skip("needs the project's git history (a clone) to check out commit 7f91590")
    archive = subprocess.run([git, "-C", str(root), "archive", REFERENCE, "src"],
                             capture_output=True, timeout=120, check=False)
    if archive.returncode != 0:
        pytest.skip(f"commit {REFERENCE} is not in this clone's history (a shallow clone?)")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:  # filter=: Python >= 3.10.12
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert _case_output(tmp_path / "src") == _case_output(root / "src")


def test_same_tokenizer_loss_matches_the_committed_reference_to_float32_rounding():
    """The fixture holds 7f91590's terms and gradient norms (written on another CPU)."""
    stored = json.loads(FIXTURE.read_text())
    now = summary()
    assert now.keys() == stored.keys()
    for case, row in stored.items():
        assert now[case].keys() == row.keys()
        for name, value in row.items():
            assert now[case][name] == pytest.approx(value, rel=1e-5, abs=0), (case, name)


def _word_spans(text, pair, encs, indices, n):
    """Per word: (sequence ids, first char, last char) of its tokens on each side."""
    out = []
    for word in range(n):
        spans = []
        for enc, index in zip(encs, indices, strict=True):
            members = [i for i, w in enumerate(index) if w == word]
            assert members == list(range(members[0], members[-1] + 1))  # contiguous
            seqs = {enc.sequence_ids()[i] for i in members}
            offsets = [enc["offset_mapping"][i] for i in members]
            start = min(a for a, _ in offsets)
            source = text if seqs != {1} else pair
            while start < len(source) and source[start].isspace():  # untrimmed "Ġword"
                start += 1
            spans.append((seqs, start, max(b for _, b in offsets)))
        out.append(spans)
    return out


@pytest.mark.parametrize("trim", [True, False])
@pytest.mark.parametrize("pair", [None, EXTRA[1]])
def test_words_hold_the_same_characters_on_both_sides(tokenizers, tmp_path, pair, trim):
    bpe = AutoTokenizer.from_pretrained(tokenizers[0] if trim else
                                        train_bpe(tmp_path / "bpe", trim_offsets=False))
    wordpiece = AutoTokenizer.from_pretrained(tokenizers[1])
    for text in [*corpus()[:8], EXTRA[0]]:
        encs = [tok(text, pair, return_offsets_mapping=True) for tok in (wordpiece, bpe)]
        s, t, n = align((text, pair), *((e["offset_mapping"], e.sequence_ids()) for e in encs))
        assert n == 2 + len(text.split()) + (1 + len(pair.split()) if pair else 0)
        for word, (student, teacher) in enumerate(_word_spans(text, pair, encs, (s, t), n)):
            assert student == teacher, (text, word)  # same text, same characters


def test_a_word_cut_by_truncation_is_dropped_on_both_sides(tokenizers):
    bpe, wordpiece = (AutoTokenizer.from_pretrained(p) for p in tokenizers)
    text = "straße naïve café overall"
    encs = [tok(text, truncation=True, max_length=m, return_offsets_mapping=True)
            for tok, m in ((wordpiece, 64), (bpe, 12))]  # the teacher cuts "naïve"
    s, t, n = align((text, None), *((e["offset_mapping"], e.sequence_ids()) for e in encs))
    kept = {w for w in t if w >= 0}
    assert kept == {w for w in s if w >= 0} == set(range(n))
    assert 2 < n < 2 + len(text.split())  # start, end and the words the teacher holds whole
    for word, (student, teacher) in enumerate(_word_spans(text, None, encs, (s, t), n)):
        assert student == teacher, word  # never a word the teacher holds in part


@pytest.mark.parametrize("how", ["mean", "first"])
def test_pooling_equals_a_loop(how):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 3, 7, 5, generator=g, dtype=torch.float64)
    index = torch.tensor([[0, 1, 1, 2, -1, 3, 3], [0, 0, 1, 2, 2, 2, -1]])
    got = pool_words(h, index, 5, how)
    for b in range(2):
        for w in range(5):
            tokens = [i for i in range(7) if index[b, i] == w]
            want = (torch.zeros(3, 5, dtype=h.dtype) if not tokens else h[b, :, tokens[0]]
                    if how == "first" else h[b, :, tokens].mean(1))
            torch.testing.assert_close(got[b, :, w], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("how", ["mean", "first"])
def test_one_token_per_word_gives_the_token_level_terms(how):
    """Word indices that map token i to word i reproduce the token-level relations."""
    g = torch.Generator().manual_seed(1)
    s = [torch.randn(2, 6, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    t = [torch.randn(2, 6, 8, generator=g, dtype=torch.float64) for _ in range(2)]
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    index = torch.where(mask.bool(), torch.arange(6), -1)
    batch = {"attention_mask": mask, "word_index": index, "teacher_word_index": index,
             "word_mask": mask}
    lm = SimpleNamespace(student=[0, 1], teacher=[0, 1])
    inputs = TermInputs(SimpleNamespace(hidden_states=s), SimpleNamespace(hidden_states=t),
                        batch, layer_map=lm)
    names = ["wr_pair", "wr_triple", "ltr_pair", "ltr_triple"]
    got = ckd_family(inputs, names, window=3, word_pooling=how)
    want = ckd_terms(torch.stack(s, 1), torch.stack(t, 1), mask, names, window=3)
    for name in names:
        torch.testing.assert_close(got[name], want[name], rtol=1e-12, atol=1e-12)


def _cross(make_cfg, tokenizers, *extra):
    bpe, wordpiece = tokenizers
    return make_cfg("distill", *roberta_teacher(bpe, 400), "student=tiny",
                    f"student.tokenizer={wordpiece}", "loss=kd_ckd", *extra)


def test_cross_tokenizer_batch_pools_each_side_to_the_same_words(make_cfg, tokenizers):
    cfg = _cross(make_cfg, tokenizers, "data.batch_size=4")
    data = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    data.validate()
    module = instantiate_plain(cfg.module)
    assert module.cross_tokenizer and module.model.config.vocab_size == 300
    assert module.teacher.config.model_type == "roberta"
    batch = next(iter(data.train_dataloader()))
    assert batch["input_ids"].max() < 300 and "teacher_input_ids" in batch
    module.train()
    inputs = module.term_inputs(batch)
    total, terms = module.objective(inputs)
    assert torch.isfinite(total)
    # the relations are those of word states pooled by a plain loop over each side's tokens
    lm, names = module.layer_map, ["wr_pair", "wr_triple", "ltr_pair", "ltr_triple"]
    words = batch["word_mask"].shape[1]
    stacks = []
    for out, layers, key in ((inputs.student, lm.student, "word_index"),
                             (inputs.teacher, lm.teacher, "teacher_word_index")):
        h = torch.stack([out.hidden_states[i] for i in layers], 1)
        pooled = torch.zeros(*h.shape[:2], words, h.shape[-1])
        for b in range(h.shape[0]):
            for w in range(int(batch["word_mask"][b].sum())):
                pooled[b, :, w] = h[b, :, batch[key][b] == w].mean(1)
        stacks.append(pooled)
    want = ckd_terms(*stacks, batch["word_mask"], names, window=21)
    for name in names:
        torch.testing.assert_close(terms[name], want[name], rtol=1e-5, atol=1e-7)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.model.parameters()
               if p.grad is not None)
    assert all(p.grad is None for p in module.teacher.parameters())


def test_the_teachers_tokenizer_named_as_the_students_changes_nothing(make_cfg, tokenizers):
    bpe, _ = tokenizers
    cfg = make_cfg("distill", *roberta_teacher(bpe, 400), "student=tiny", "loss=kd_ckd",
                   f"student.tokenizer={bpe}", "+student.config.pad_token_id=1")
    data = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    assert data.teacher_tokenizer is None
    assert not instantiate_plain(cfg.module).cross_tokenizer


def test_distill_across_tokenizers_runs_and_exports_the_students_tokenizer(make_cfg,
                                                                            tokenizers):
    cfg = _cross(make_cfg, tokenizers, "loss.ckd.word_pooling=first")
    from lmcompress.run import run_stage

    result = run_stage(cfg)
    assert result["status"] == "ok" and result["global_step"] > 0
    exported = AutoTokenizer.from_pretrained(result["export_dir"])
    assert len(exported) == 300  # the student's WordPiece, not the teacher's BPE


@pytest.mark.parametrize("override, key", [
    ("student=teacher_layers", "student.init=teacher_layers"),
    ("+loss.weights.hidden_mse=1", "loss.weights.hidden_mse"),
])
def test_refusals_name_the_key(make_cfg, tokenizers, override, key):
    cfg = _cross(make_cfg, tokenizers, override)
    if override.startswith("student="):  # the group resets student.tokenizer
        cfg = _cross(make_cfg, tokenizers, override, f"student.tokenizer={tokenizers[1]}")
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        instantiate_plain(cfg.module)


def test_tagging_and_slow_tokenizers_are_refused_by_key():
    fast = SimpleNamespace(is_fast=True)
    with pytest.raises(ValueError, match="task.kind=token_classification"):
        check_two_tokenizers({"token_classification"}, (fast, "s"), (fast, "t"))
    with pytest.raises(ValueError, match=r"data\.tokenizer=t: .*slow tokenizer"):
        check_two_tokenizers({"classification"}, (fast, "s"), (SimpleNamespace(), "t"))


@pytest.mark.parametrize("padding, width", [("longest", None), ("max_length", 32)])
def test_collator_pads_each_side_and_the_words(tokenizers, padding, width):
    from lmcompress.data.words import TwoTokenizerCollator, two_tokenizer_batch

    bpe, wordpiece = (AutoTokenizer.from_pretrained(p) for p in tokenizers)
    texts = corpus()[:3]
    features = two_tokenizer_batch({"text": texts}, wordpiece, bpe, 32)
    rows = [{k: v[i] for k, v in features.items()} | {"labels": i % 2} for i in range(3)]
    batch = TwoTokenizerCollator(wordpiece, bpe, padding, 32)(rows)
    counts = [2 + len(t.split()) for t in texts]
    assert batch["word_mask"].sum(1).tolist() == counts
    assert batch["word_mask"].shape[1] == (width or max(counts))
    for side, ids in (("word_index", "input_ids"), ("teacher_word_index", "teacher_input_ids")):
        assert batch[side].shape == batch[ids].shape
        assert (batch[side][batch[ids.replace("input_ids", "attention_mask")] == 0] == -1).all()
    assert batch["teacher_input_ids"].max() < len(bpe) and batch["labels"].tolist() == [0, 1, 0]
