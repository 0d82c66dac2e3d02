"""The AMoC paper's base classifier: BERT + a scalar mix of all hidden states + a small CNN head.

Rotman, Feder & Reichart, "Model Compression for Domain Adaptation through Causal Effect
Estimation", TACL 2021, arXiv:2101.07086 (docs/amoc.md §2)::

    states  = [embeddings, layer_1, ..., layer_L]                 # L + 1 tensors [B, T, H]
    mix     = gamma * sum_k softmax(w)_k * states_k               # w init 0, gamma init 1
    logits  = Linear(flatten(AvgPool1d(2)(Conv1d(H -> 16, k=9, pad=4)(mix))))

The classifier sees ``16 * T / 2`` features, so every input must have exactly
``config.input_length`` tokens (``data.pad_to_max_length=true``); other lengths are refused.
Layer dropout replaces a mix weight by -1e20 (so its state gets no mass) with probability
``mix_layer_dropout``, in training only unless ``mix_dropout_at_eval`` (the official code's
behaviour, which makes evaluation random; off by default). Built by ``model.head=scalar_mix_cnn``
(``conf/model/minilm_l6_mixcnn.yaml``); :func:`select_mix_states` keeps the mix consistent when
encoder layers are removed. Registered with the Auto classes on ``import lmcompress``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

try:  # transformers >= 5: init functions that never overwrite weights loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # pragma: no cover - transformers 4 initialises only missing weights anyway
    from torch.nn import init

MODEL_TYPE = "bert_mixcnn"
DROPPED = -1e20  # a dropped mix weight: softmax gives its state (numerically) zero mass


class ScalarMixCNNConfig(BertConfig):
    """A ``BertConfig`` plus the mix and CNN head settings (docs/amoc.md §2).

    ``input_length`` is the fixed number of tokens per input (= ``data.max_length``); it is not
    called ``max_length`` because that name is a generation setting in Hugging Face configs.
    """

    model_type = MODEL_TYPE

    input_length: int = 128
    cnn_channels: int = 16
    cnn_kernel: int = 9
    pool_size: int = 2
    mix_layer_dropout: float | int = 0.1
    mix_dropout_at_eval: bool = False


class ScalarMix(nn.Module):
    """``gamma * sum_k softmax(w)_k * states_k`` with layer dropout on the weights ``w``."""

    def __init__(self, num_states: int, layer_dropout: float = 0.0,
                 dropout_at_eval: bool = False):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_states))
        self.gamma = nn.Parameter(torch.ones(1))
        self.layer_dropout, self.dropout_at_eval = layer_dropout, dropout_at_eval

    def forward(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(states) != len(self.weights):
            raise ValueError(f"ScalarMix has {len(self.weights)} weights but got {len(states)} "
                             "hidden states (remove layers with lmcompress.models.surgery."
                             "drop_layers, which also drops their mix weights)")
        weights = self.weights
        if self.layer_dropout > 0 and (self.training or self.dropout_at_eval):
            dropped = torch.rand_like(weights) < self.layer_dropout
            weights = weights.masked_fill(dropped, DROPPED)
        norm = torch.softmax(weights, dim=0)
        return self.gamma * torch.einsum("k,kbth->bth", norm, torch.stack(list(states)))

    def keep(self, indices: Sequence[int]) -> None:
        """Keep only the weights of hidden states ``indices`` (0 = embeddings), in that order."""
        kept = self.weights.detach()[list(indices)].clone()
        self.weights = nn.Parameter(kept, requires_grad=self.weights.requires_grad)


class CNNHead(nn.Module):
    """Conv1d over tokens, average pooling, flatten, linear classifier (no activation)."""

    def __init__(self, config: ScalarMixCNNConfig):
        super().__init__()
        if config.cnn_kernel % 2 == 0:
            raise ValueError(f"model.config.cnn_kernel={config.cnn_kernel}: use an odd kernel "
                             "so the convolution keeps the sequence length")
        self.conv = nn.Conv1d(config.hidden_size, config.cnn_channels, config.cnn_kernel,
                              padding=config.cnn_kernel // 2)
        self.pool = nn.AvgPool1d(config.pool_size)
        features = config.cnn_channels * (config.input_length // config.pool_size)
        self.classifier = nn.Linear(features, config.num_labels)

    def forward(self, mixed: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(self.conv(mixed.transpose(1, 2)))  # [B, channels, T / pool]
        return self.classifier(pooled.flatten(1))


class ScalarMixCNNForSequenceClassification(BertPreTrainedModel):
    """BERT encoder (no pooler) + :class:`ScalarMix` over its L + 1 states + :class:`CNNHead`."""

    config_class = ScalarMixCNNConfig
    config: ScalarMixCNNConfig

    def __init__(self, config: ScalarMixCNNConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.mix = ScalarMix(config.num_hidden_layers + 1, config.mix_layer_dropout,
                             config.mix_dropout_at_eval)
        self.head = CNNHead(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv1d):  # the official conv keeps PyTorch's default init
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(module.in_channels * module.kernel_size[0])
            init.uniform_(module.bias, -bound, bound)
            return
        super()._init_weights(module)
        if isinstance(module, ScalarMix):
            init.zeros_(module.weights)
            init.ones_(module.gamma)

    def check_length(self, length: int) -> None:
        """Refuse an input whose token count is not the configured ``input_length``."""
        if length != self.config.input_length:
            raise ValueError(
                f"the scalar_mix_cnn head flattens exactly input_length="
                f"{self.config.input_length} tokens, got inputs of {length}: set "
                f"data.pad_to_max_length=true and data.max_length={self.config.input_length}")

    def classify(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits from the embedding output and every layer's output (L + 1 states)."""
        self.check_length(states[0].shape[1])
        return self.head(self.mix(states))

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> SequenceClassifierOutput:
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape
        self.check_length(shape[1])
        outputs = self.bert(input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids, position_ids=position_ids,
                            inputs_embeds=inputs_embeds, output_hidden_states=True,
                            return_dict=True)
        logits = self.classify(outputs.hidden_states)
        loss = None
        if labels is not None:
            loss = (nn.functional.mse_loss(logits.squeeze(-1), labels.float())
                    if self.num_labels == 1 else
                    nn.functional.cross_entropy(logits, labels.view(-1)))
        return SequenceClassifierOutput(
            loss=loss, logits=logits,
            hidden_states=outputs.hidden_states if output_hidden_states else None)


def as_mixcnn_config(config: BertConfig) -> ScalarMixCNNConfig:
    """The mix-CNN config of a BERT-family encoder config (its architecture settings kept)."""
    if config.model_type not in ("bert", MODEL_TYPE):
        raise ValueError(f"model.head=scalar_mix_cnn needs a BERT encoder (BERT, MiniLM), got "
                         f"model_type={config.model_type!r}")
    values = {k: v for k, v in config.to_dict().items()
              if k not in ("model_type", "architectures", "transformers_version")}
    return ScalarMixCNNConfig(**values)


def select_mix_states(model: ScalarMixCNNForSequenceClassification,
                      kept_layers: Sequence[int]) -> None:
    """After removing encoder layers: keep the mix weights of the embeddings and ``kept_layers``.

    Dropping a state's weight is what the official code's -1e20 frozen weight does at
    evaluation: the softmax renormalises over the remaining states (docs/amoc.md §3).
    """
    model.mix.keep([0] + [i + 1 for i in kept_layers])


AutoConfig.register(MODEL_TYPE, ScalarMixCNNConfig, exist_ok=True)
AutoModelForSequenceClassification.register(ScalarMixCNNConfig,
                                            ScalarMixCNNForSequenceClassification,
                                            exist_ok=True)
