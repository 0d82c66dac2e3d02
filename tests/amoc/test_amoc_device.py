"""The search on the training device (issue 19): the base model is copied to the module's
device in fp32, candidates read each cached batch on their own device, and everything the
features read (predictions, cached states, trained parameters) stays in host memory. No second
device here: ``meta`` stands in for a GPU where only placement can show, and a spy on
``CachedBatch.to`` shows that every training and prediction batch is sent to the model."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from amoc_fixtures import cached_candidate, tiny_model

from lmcompress.amoc.cache import CachedBatch
from lmcompress.amoc.train import TrainSpec, predict, train_candidate, trained_state
from lmcompress.callbacks.amoc import AMoCCallback

META = torch.device("meta")


def test_the_base_model_goes_to_the_modules_device_in_fp32():
    model = tiny_model("pooler").to(torch.bfloat16)
    module = SimpleNamespace(model=model.to(META), device=META)
    trainer = SimpleNamespace(checkpoint_callback=SimpleNamespace(best_model_path=""))
    base = AMoCCallback.base_model(trainer, module)
    assert {p.device for p in base.parameters()} == {META}
    assert {p.dtype for p in base.parameters()} == {torch.float32}
    assert base is not model and not base.training


def test_a_cached_batch_moves_what_a_candidate_reads():
    batch = CachedBatch(inputs={"input_ids": torch.ones(2, 3, dtype=torch.long),
                                "attention_mask": torch.ones(2, 3, dtype=torch.long)},
                        labels=torch.zeros(2, dtype=torch.long), base_probs=torch.rand(2, 2),
                        pooled=torch.rand(2, 4), token_mask=torch.ones(2, 3, dtype=torch.bool),
                        states={1: torch.rand(2, 3, 4)})
    moved = batch.to(META)
    assert {t.device for t in [*moved.inputs.values(), moved.labels, moved.token_mask,
                               *moved.states.values()]} == {META}
    assert moved.base_probs.device.type == "cpu"  # the features read these on the host
    assert batch.to(torch.device("cpu")) is batch


def test_every_training_and_prediction_batch_is_sent_to_the_models_device(monkeypatch):
    base = tiny_model("pooler", num_labels=3)
    start, train, dev, model = cached_candidate(base, (2,), "classification")
    sent = []
    original = CachedBatch.to

    def spy(self, device):
        sent.append(device)
        return original(self, device)

    monkeypatch.setattr(CachedBatch, "to", spy)
    candidate = model()
    train_candidate(candidate, start, train, TrainSpec(lr=1e-2, batch_size=8, epochs=2))
    assert sent == [torch.device("cpu")] * 2 * len(train.batches)
    sent.clear()
    probs = predict(candidate, start, dev)
    assert sent == [torch.device("cpu")] * len(dev.batches)
    assert {p.device.type for p in probs} == {"cpu"}
    assert {t.device.type for t in trained_state(candidate).values()} == {"cpu"}
