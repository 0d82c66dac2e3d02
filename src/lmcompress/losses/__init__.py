"""Loss terms (pure torch) and the objective registry; importing this registers the built-ins.

Built-in terms: ``task`` and ``kd`` (``kd.py``), ``hidden_mse`` (``hidden.py``), and CKD's
``wr_pair``, ``wr_triple``, ``ltr_pair``, ``ltr_triple`` (``ckd/``). See ``registry.py``.
"""

from lmcompress.losses import ckd, hidden, kd, mlm  # noqa: F401  (registration)
from lmcompress.losses.ckd.ranks import counts_across_ranks
from lmcompress.losses.registry import (
    REGISTRY,
    Objective,
    TermInputs,
    register_family,
    register_term,
)

__all__ = ["REGISTRY", "Objective", "TermInputs", "counts_across_ranks", "register_family",
           "register_term"]
