"""Rebuild the CKD-on-MRPC table: dev F1 and accuracy, mean ± std over seeds, per objective.

usage: python sweeps/ckd_mrpc_cpu/collect.py <sweep dir> [<sweep dir> ...]
"""

import sys

from lmcompress.report import collect, markdown_table, model_shape

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = []
    for sweep_dir in sys.argv[1:]:
        rows += collect(sweep_dir, group_by=["student", "loss"],
                        metrics=["val/f1", "val/accuracy"], derive={"student": model_shape})
    print(markdown_table(rows))
