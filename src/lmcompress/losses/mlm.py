"""``mlm``: the student's masked-language-model loss on the tokens the collator masked.

For general distillation with a teacher that has an MLM head (``data.mlm_probability > 0``
masks tokens and stores the originals in ``mlm_labels``; docs/general.md). Positions that were
not masked hold ``IGNORE_INDEX`` and count for nothing. A batch with no masked token gives 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmcompress.labels import IGNORE_INDEX
from lmcompress.losses.registry import TermInputs, register_term


@register_term("mlm", needs_teacher=False)
def mlm_loss(inputs: TermInputs) -> torch.Tensor:
    """Cross-entropy of the student's MLM logits against the masked tokens' original ids."""
    labels = inputs.batch.get("mlm_labels")
    if labels is None:
        raise ValueError("loss.weights.mlm > 0, but the batch has no mlm_labels: set "
                         "data.mlm_probability > 0 (the general stage's corpus masks tokens)")
    logits = inputs.student.logits
    if (labels != IGNORE_INDEX).sum() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                           ignore_index=IGNORE_INDEX)
