#!/usr/bin/env bash
# Deep fine-tuning of SevenNet-0 on the six mlearn elements on a GPU, in chunks (issue 28).
#
#   bash benchmarks/finetune_gpu.sh [STORE]            # one chunk of the next unfinished element
#   ALL=1 bash benchmarks/finetune_gpu.sh [STORE]      # chunks until every element has finished
#
# Each chunk is one `surfbench train --method sevennet --from sevennet-0 -e EL --preset paper
# --protocol mlearn-split --device cuda --max-minutes $CHUNK_MINUTES` (default 9 minutes of
# fitting, so that a chunk with its start-up and evaluation fits in a 10-minute slot). A chunk
# that runs out of budget stops after its last whole epoch (budget-stopped); the same command
# continues that checkpoint (surfbench/training/epochs.py), so the chunks add up to one
# uninterrupted training. An element is finished when its training is `converged` (50 epochs
# without a lower validation loss) or at the 200-epoch cap (`epoch-cap`, marked NOT CONVERGED in
# every table). The state of each: `surfbench table --trained -w STORE`, or in Python
# `surfbench.training_runs(STORE)`.
#
# On a machine whose Python is not one surfbench's pyproject admits (3.11-3.13), or where the
# package is not installed, it runs from the source tree: PYTHONPATH=src python -m surfbench.cli.
# DEVICE=cpu runs the same chunks on the CPU (for a check of the script; hours per element).
set -euo pipefail

STORE=${1:-finetune-gpu}
CHUNK_MINUTES=${CHUNK_MINUTES:-9}
DEVICE=${DEVICE:-cuda}
ELEMENTS=${ELEMENTS:-"Ni Cu Li Mo Si Ge"}
PY=${PYTHON:-python}
here=$(cd "$(dirname "$0")/.." && pwd)
if $PY -c "import surfbench" 2>/dev/null; then
  SB=($PY -m surfbench.cli)
else
  export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
  SB=($PY -m surfbench.cli)
fi

state_of() {  # the recorded state of element $1's training, or "none"
  $PY - "$STORE" "$1" <<'EOF'
import sys
from pathlib import Path
from surfbench.training.epochs import run_states
rows = [r for r in run_states(Path(sys.argv[1]) / "trained")
        if r["name"].startswith(f"sevennet-ft-sevennet-0-{sys.argv[2].lower()}-paper-mlearn-split-")]
print(rows[0]["state"] if rows else "none")
EOF
}

chunk() {  # one chunk of element $1
  echo "== $(date -u +%H:%M:%S) $1: chunk of $CHUNK_MINUTES min on $DEVICE (load $(cut -d' ' -f1 /proc/loadavg))"
  "${SB[@]}" train --method sevennet --from sevennet-0 -e "$1" --preset paper --protocol mlearn-split \
    --device "$DEVICE" --store "$STORE" --max-minutes "$CHUNK_MINUTES"
  echo "== $(date -u +%H:%M:%S) $1: $(state_of "$1")"
}

while :; do
  next=""
  for el in $ELEMENTS; do
    case "$(state_of "$el")" in
      converged|epoch-cap) ;;
      *) next=$el; break ;;
    esac
  done
  if [ -z "$next" ]; then
    echo "every element finished:"; for el in $ELEMENTS; do echo "  $el: $(state_of "$el")"; done
    exit 0
  fi
  chunk "$next"
  [ "${ALL:-0}" = 1 ] || exit 0
done
