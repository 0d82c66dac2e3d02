"""``import lmcompress`` makes head-sliced DynaBERT exports load without ``trust_remote_code``.

Every export already loads in a plain transformers environment (docs/dynabert.md §7): a folder
with fewer heads carries its twin's modeling file and an ``auto_map``. This module registers the
same twin classes (:mod:`.modeling_lmcompress_sliced`) with the Auto API, so that after
``import lmcompress`` a plain ``AutoModelForSequenceClassification.from_pretrained(folder)``
works too (``model_type`` = ``lmcompress-sliced-<family>``).
"""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from lmcompress.models.dynabert.modeling_lmcompress_sliced import FAMILIES, TWINS, twin_names

SlicedBertConfig = TWINS["SlicedBertConfig"]
SlicedBertModel = TWINS["SlicedBertModel"]
SlicedBertForSequenceClassification = TWINS["SlicedBertForSequenceClassification"]
SlicedBertForTokenClassification = TWINS["SlicedBertForTokenClassification"]

for _family in FAMILIES:
    _config_name, _model_names = twin_names(_family)
    if _config_name not in TWINS:
        continue
    _config = TWINS[_config_name]
    # exist_ok: re-importing (importlib.reload, notebooks) must not fail
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    for _auto, _name in zip((AutoModel, AutoModelForSequenceClassification,
                             AutoModelForTokenClassification), _model_names, strict=True):
        _auto.register(_config, TWINS[_name], exist_ok=True)
