#!/usr/bin/env bash
# One prepared run for the GPU machine (device tool): the bench with the surrogate on the GPU
# (NEURON on the machine's CPU cores; scaling sweep up to 10^4 cells x 1 s, issue 13) and
# the network engine's scale on the GPU (10^3 and 10^4 cells x 1 s, issue 14). Everything
# it writes goes to $OUT, which the device tool brings back.
#
# Before: bash benchmarks/device/fetch_wheels.sh   (here: the wheels the GPU image lacks)
# Then, from this machine, one call of the device tool:
#   run(command="bash benchmarks/device/gpu_bench.sh", carry=[".whl"], timeout_s=600)
# Its two steps are capped at 390 s and 150 s (install and checks: about 20 s). Only the
# QUICK rehearsal below has been run; the full-mode duration on the GPU is not measured
# yet (the NEURON single cell takes about 50 s of one core, drawing 10^4 cells' inputs
# about a minute). The exit status is non-zero when either step failed.
# Rehearsal on a CPU (a fresh Python with torch and no lfpsurrogate installed):
#   PYVER=3.11 WHEELS=.whl311 bash benchmarks/device/fetch_wheels.sh
#   OUT=/tmp/out WHEELS=.whl311 DEVICE=cpu QUICK=1 bash benchmarks/device/gpu_bench.sh
set -uo pipefail
OUT=${OUT:-$PWD/out-device}
WHEELS=${WHEELS:-.whl}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
SITE=${SITE:-/tmp/site}
PY=${PY:-python3}
mkdir -p "$OUT"
# the device tool brings back at most 8 files: every log goes to steps.log; results are
# bench-<date>.json (+ its plot) and network_scale_cuda.json
LOG="$OUT/steps.log"
log() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }

log "install the carried wheels into $SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$WHEELS"/*.whl >> "$LOG" 2>&1 || { log "install failed"; exit 1; }
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PATH="$SITE/bin:$PATH" PYTHONUNBUFFERED=1
export LFPSURROGATE_CACHE=${LFPSURROGATE_CACHE:-/tmp/lfpsurrogate-cache}  # mechanisms compiled there by nrnivmodl
{ nvidia-smi 2>&1 || true; nproc; "$PY" -c "import sys, torch, neuron, lfpsurrogate as l
print(sys.version); print('torch', torch.__version__, 'cuda', torch.cuda.is_available()); print('neuron', neuron.__version__, 'lfpsurrogate', l.__version__)"; } >> "$LOG" 2>&1

if [ "$QUICK" = 1 ]; then
  BENCH=(--quick); SCALE=(--cells 20 --duration-ms 200)
else
  BENCH=(--sweep-cells 1 10 100 1000 10000 --neuron-cells 16); SCALE=(--cells 1000 10000)
fi
log "bench (surrogate on $DEVICE, NEURON on $(nproc) cores)"
timeout 390 "$PY" -m lfpsurrogate.cli bench --device "$DEVICE" "${BENCH[@]}" --out-dir "$OUT" \
  --json > /dev/null 2>> "$LOG"
rc_bench=$?
log "bench exit $rc_bench"
log "network scale (surrogate engine on $DEVICE)"
timeout 150 "$PY" benchmarks/bench_network.py scale --device "$DEVICE" "${SCALE[@]}" \
  --out-dir "$OUT" >> "$LOG" 2>&1
rc_scale=$?
log "network scale exit $rc_scale"
ls -la "$OUT" | tee -a "$LOG"
exit $(( rc_bench != 0 || rc_scale != 0 ))
