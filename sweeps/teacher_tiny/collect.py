"""Rebuild the teacher_tiny table (mean ± std over seeds per task) from a sweep directory."""

import sys

from lmcompress.report import collect, markdown_table

if __name__ == "__main__":
    rows = collect(sys.argv[1], group_by=["task"], metrics=["val/accuracy", "test/accuracy"])
    print(markdown_table(rows))
