"""Rebuild the CKD-on-SST-2 table: dev accuracy mean ± std over seeds, per student and objective.

usage: python sweeps/ckd_sst2_cpu/collect.py <sweep dir> [<sweep dir> ...]
"""

import sys

from lmcompress.report import collect, markdown_table, model_shape

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = []
    for sweep_dir in sys.argv[1:]:
        rows += collect(sweep_dir, group_by=["student", "loss"], metrics=["val/accuracy"],
                        derive={"student": model_shape})
    print(markdown_table(rows))
