"""DynaBERT (Hou et al., NeurIPS 2020, arXiv:2004.04037): width- and depth-adaptive BERT.

The model layer, pure torch/transformers (docs/dynabert.md): importance scores and rewiring
(:mod:`.importance`, :mod:`.rewire`), the sub-network rules (:mod:`.subnets`), the dynamic
model (:mod:`.dynamic`) and the export of a sub-network as a smaller model (:mod:`.export`,
:mod:`.auto`).
"""

from lmcompress.models.dynabert.dynamic import current_subnet, make_dynamic, set_subnet, subnet
from lmcompress.models.dynabert.export import check_exportable, extract_subnetwork, param_count
from lmcompress.models.dynabert.importance import compute_importance
from lmcompress.models.dynabert.rewire import rewire
from lmcompress.models.dynabert.subnets import (
    SubnetShape,
    dynabert_layer_map,
    encoder_flops,
    kept_layers,
    round_half_up,
    subnet_shape,
)
from lmcompress.specs import DEPTHS, WIDTHS  # the official grid: the defaults of DynaBertSpec

__all__ = [
    "DEPTHS", "WIDTHS", "SubnetShape", "check_exportable", "compute_importance", "current_subnet",
    "dynabert_layer_map", "encoder_flops", "extract_subnetwork", "kept_layers", "make_dynamic",
    "param_count", "rewire", "round_half_up", "set_subnet", "subnet", "subnet_shape",
]
