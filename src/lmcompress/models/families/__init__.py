"""Encoder-family adapters: the one place that knows each architecture (docs/families.md).

Importing this package registers every family; use :func:`adapter_for`.
"""

from lmcompress.models.families import (  # noqa: F401  (each registers its adapter)
    bert,
    deberta_v2,
    distilbert,
    electra,
    modernbert,
    mpnet,
    roberta,
)
from lmcompress.models.families.base import (
    AttentionParts,
    FamilyAdapter,
    FfnParts,
    RelativePosition,
    UnsupportedFamilyError,
    adapter_for,
    register,
    supported_model_types,
)

__all__ = ["AttentionParts", "FamilyAdapter", "FfnParts", "RelativePosition",
           "UnsupportedFamilyError", "adapter_for", "register", "supported_model_types"]
