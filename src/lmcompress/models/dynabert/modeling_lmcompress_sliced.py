"""Head-sliced twins of transformers encoder classes: DynaBERT sub-networks with fewer heads.

SELF-CONTAINED: this file imports only torch and transformers. lmcompress copies it into every
exported folder whose model keeps fewer attention heads than its family's config implies, and
``config.json`` points at it through ``auto_map`` (the Hugging Face convention for custom
architectures), so the export loads in a plain transformers environment::

    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

A twin is the family's own class (``BertForSequenceClassification``, ``ModernBertModel``...)
that, just before ``post_init`` (weight init; ``from_pretrained`` then loads the checkpoint),
rebuilds the linears named in ``config.sliced_layout`` at their sliced shapes and sets the head
counts its attention modules keep. The layout (written by lmcompress at export) holds:

* ``layers``: the dotted path of the layer list inside the base model (``encoder.layer``);
* ``linears``: path inside a layer -> ``[out_features, in_features]``;
* ``attrs``: path inside a layer -> ``{attribute: value}`` (``num_attention_heads``...);
* ``tables``: path inside the base model -> ``[rows, columns]`` of an ``nn.Embedding``
  (MPNet's shared per-head relative-position bias).

Weight names stay the family's, so the checkpoint is an ordinary ``save_pretrained`` folder.
"""

from __future__ import annotations

import transformers
from torch import nn

FAMILIES = {  # family -> config class, then model classes (the twins keep these names)
    "bert": ("BertConfig", "BertModel", "BertForSequenceClassification",
             "BertForTokenClassification"),
    "roberta": ("RobertaConfig", "RobertaModel", "RobertaForSequenceClassification",
                "RobertaForTokenClassification"),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel",
                    "XLMRobertaForSequenceClassification", "XLMRobertaForTokenClassification"),
    "electra": ("ElectraConfig", "ElectraModel", "ElectraForSequenceClassification",
                "ElectraForTokenClassification"),
    "deberta-v2": ("DebertaV2Config", "DebertaV2Model", "DebertaV2ForSequenceClassification",
                   "DebertaV2ForTokenClassification"),
    "mpnet": ("MPNetConfig", "MPNetModel", "MPNetForSequenceClassification",
              "MPNetForTokenClassification"),
    "distilbert": ("DistilBertConfig", "DistilBertModel", "DistilBertForSequenceClassification",
                   "DistilBertForTokenClassification"),
    "modernbert": ("ModernBertConfig", "ModernBertModel", "ModernBertForSequenceClassification",
                   "ModernBertForTokenClassification"),
}
PREFIX = "lmcompress-sliced-"
"""``model_type`` of a twin config: this prefix, then the family (``lmcompress-sliced-bert``)."""


def _module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path) if path else root


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(_module(root, parent), name, new)


def narrow(model: nn.Module, layout: dict) -> None:
    """Rebuild ``model``'s sliced linears, head counts and per-head tables per ``layout``."""
    base = getattr(model, model.base_model_prefix, model)
    for layer in _module(base, layout["layers"]):
        for path, (out_features, in_features) in layout["linears"].items():
            old = _module(layer, path)
            _replace(layer, path, nn.Linear(in_features, out_features, bias=old.bias is not None,
                                            device=old.weight.device, dtype=old.weight.dtype))
        for path, attrs in layout.get("attrs", {}).items():
            for name, value in attrs.items():
                setattr(_module(layer, path), name, value)
    for path, (rows, columns) in layout.get("tables", {}).items():
        old = _module(base, path)
        _replace(base, path, nn.Embedding(rows, columns, device=old.weight.device,
                                          dtype=old.weight.dtype))


class _Sliced:
    """Mixin: narrow the freshly built layers just before ``post_init``."""

    def post_init(self) -> None:
        narrow(self, self.config.sliced_layout)
        super().post_init()


def _twins() -> dict[str, type]:
    """Every available family's twin config and model classes, by class name."""
    made: dict[str, type] = {}
    for family, (config_name, *model_names) in FAMILIES.items():
        stock_config = getattr(transformers, config_name, None)
        if stock_config is None:  # an older transformers without this family
            continue
        config_class = type(f"Sliced{config_name}", (stock_config,), {
            "model_type": PREFIX + family, "__module__": __name__,
            "__doc__": f"{config_name} with ``sliced_layout`` (the head-sliced layers)."})
        made[config_class.__name__] = config_class
        for name in model_names:
            made[f"Sliced{name}"] = type(f"Sliced{name}", (_Sliced, getattr(transformers, name)), {
                "config_class": config_class, "__module__": __name__,
                "__doc__": f"{name} whose layers keep fewer attention heads."})
    return made


TWINS = _twins()
"""``Sliced<ClassName>`` -> class, for every family this transformers provides."""
globals().update(TWINS)  # auto_map names them as attributes of this module


def twin_names(family: str) -> tuple[str, list[str]]:
    """The twin config class name and model class names of ``family``."""
    config_name, *model_names = FAMILIES[family]
    return f"Sliced{config_name}", [f"Sliced{name}" for name in model_names]
