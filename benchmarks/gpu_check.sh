#!/usr/bin/env bash
# The prepared GPU check (issue 8): one GPU (H100 / H200), no network, under 8 minutes.
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh        # from the repository root
#
# 1. env.txt      the GPU, driver, Python and package versions; which imports are missing
# 2. tests.txt    the LLM tests on CUDA: pytest tests/llm without test_distributed.py (gloo,
#                 CPU processes) and test_resume.py (exact resume on CPU, in subprocesses), with
#                 benchmarks/gpu_check_plugin.py (WINDConfig.use_cpu forced off, so the
#                 in-process trainers run on cuda:0); at most TESTS_S seconds (default 150)
# 3. bench.json   a few WIND rounds in bf16 on a randomly initialized ~0.5B Llama, then one
#                 held-out evaluation (the evaluation's path on CUDA: its metrics in bench.json)
#    bench.txt    (benchmarks/gpu_bench.py): samples/s, peak GPU memory, seconds per phase;
#    metrics.jsonl the trainer's log; at most BENCH_S seconds (default 120)
# 4. llm_throughput_gpu.json / .md   benchmarks/llm_throughput.py on the GPU at equal work
#                 (fixed-length samples, 3 interleaved repetitions of 5 measured steps): WIND's
#                 trainer (prompts shared and not) vs TRL's OnlineDPOTrainer vs the floor, on the
#                 SmolLM2-135M architecture with random weights (folder $GPU_MODEL: its config
#                 and tokenizer, no weights) and the heuristic oracle; its log is appended to
#                 bench.txt; at most TP_S seconds (default 270; a cut run's finished repetitions
#                 are kept: rerun with --resume); skipped without $GPU_MODEL or trl
# 5. summary.md   exit codes and the headline numbers
#
# Fails soft: every part runs under `timeout`, a failing part is recorded and the next one runs,
# and whatever a part wrote stays in $OUT; the script itself always exits 0. Nothing is
# downloaded. Pure-Python packages missing there (pytest, pytest-xdist, ...) can travel as wheels
# in the folder $WHEELS (default .gpu-wheels in the working tree: `pip download -d .gpu-wheels
# pytest pytest-xdist`) and are installed from it with pip --no-index. At most 8 files come back
# from $OUT: this writes 6.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 0
OUT="${OUT:-$ROOT/runs/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
TESTS_S="${TESTS_S:-150}"
BENCH_S="${BENCH_S:-120}"
TP_S="${TP_S:-270}"
GPU_MODEL="${GPU_MODEL:-$ROOT/.gpu-model}"
WHEELS="${WHEELS:-$ROOT/.gpu-wheels}"
export PYTHONPATH="$ROOT:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
START=$(date +%s)
SUMMARY="$OUT/summary.md"
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

note "# GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
note ""

# ---- 1. environment ---------------------------------------------------------------------------
{
  echo "## nvidia-smi"
  nvidia-smi 2>&1 || echo "nvidia-smi failed"
  echo
  echo "## python"
  "$PY" - <<'EOF' 2>&1
import importlib, platform, sys
print(sys.version.replace("\n", " "), platform.platform())
missing = []
for name in ["torch", "transformers", "accelerate", "peft", "numpy", "scipy", "yaml",
             "safetensors", "tokenizers", "datasets", "tqdm", "matplotlib", "pytest", "xdist"]:
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as err:  # noqa: BLE001
        missing.append(name)
        print(f"{name} MISSING ({type(err).__name__}: {err})")
import torch
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("MISSING", " ".join(missing))
EOF
} > "$OUT/env.txt" 2>&1
MISSING="$(grep '^MISSING' "$OUT/env.txt" | cut -d' ' -f2-)"
if [ -n "$MISSING" ] && [ -d "$WHEELS" ]; then
  PIPNAMES="$(echo "$MISSING" | sed 's/\byaml\b/pyyaml/; s/\bxdist\b/pytest-xdist/')"
  echo "## pip install --no-index --find-links $WHEELS $PIPNAMES" >> "$OUT/env.txt"
  # shellcheck disable=SC2086
  timeout 60 "$PY" -m pip install -q --no-index --find-links "$WHEELS" $PIPNAMES \
    >> "$OUT/env.txt" 2>&1 || echo "(some could not be installed)" >> "$OUT/env.txt"
fi
note "- device: $(grep '^cuda ' "$OUT/env.txt" | head -1)"
note "- missing imports at start: ${MISSING:-none}"

# ---- 2. the LLM tests on CUDA -----------------------------------------------------------------
if "$PY" -c "import pytest" 2>/dev/null; then
  XDIST=()
  if "$PY" -c "import xdist" 2>/dev/null; then XDIST=(-n 4); fi
  timeout -k 10 "$TESTS_S" "$PY" -m pytest -v -rfE --tb=short -p gpu_check_plugin -p no:cacheprovider \
    ${XDIST[@]+"${XDIST[@]}"} tests/llm --ignore=tests/llm/test_distributed.py \
    --ignore=tests/llm/test_resume.py --durations=10 \
    > "$OUT/tests.txt" 2>&1
  RC=$?
  note "- tests (pytest tests/llm on CUDA, ${TESTS_S} s limit): exit $RC$([ $RC = 124 ] && echo ' (time limit)')"
  note "  - $(grep -E '(passed|failed|error)' "$OUT/tests.txt" | tail -1)"
else
  echo "pytest is not installed and no wheel for it was found in $WHEELS" > "$OUT/tests.txt"
  note "- tests: not run (no pytest; carry its wheels in $WHEELS)"
fi

# ---- 3. WIND rounds in bf16 on a ~0.5B model --------------------------------------------------
timeout -k 10 "$BENCH_S" "$PY" benchmarks/gpu_bench.py --out "$OUT" > "$OUT/bench.txt" 2>&1
RC=$?
note "- bench (benchmarks/gpu_bench.py, ${BENCH_S} s limit): exit $RC$([ $RC = 124 ] && echo ' (time limit)')"
if [ -f "$OUT/bench.json" ]; then
  "$PY" - "$OUT/bench.json" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import json, sys
r = json.load(open(sys.argv[1]))
keys = ["status", "device", "parameters", "samples_per_second", "samples_per_second_wall",
        "tokens_per_second_generated", "peak_memory_gib", "per_round_seconds", "error"]
for k in keys:
    if k in r:
        print(f"  - {k}: {r[k]}")
EOF
fi
# ---- 4. throughput against TRL (issue 9) -----------------------------------------------------
if [ -f "$GPU_MODEL/config.json" ] && "$PY" -c "import trl" 2>/dev/null; then
  TP=(benchmarks/llm_throughput.py --out "${TMPDIR:-/tmp}/wind-tp" --tag gpu --device cuda
      --contenders wind wind-unshared trl floor --random-init "$GPU_MODEL" --preference heuristic)
  timeout -k 10 "$TP_S" "$PY" "${TP[@]}" >> "$OUT/bench.txt" 2>&1
  RC=$?
  # a cut run still summarizes its finished repetitions; the per-run log stays behind
  "$PY" "${TP[@]}" --summarize >> "$OUT/bench.txt" 2>&1
  cp "${TMPDIR:-/tmp}/wind-tp/llm_throughput_gpu.json" "${TMPDIR:-/tmp}/wind-tp/llm_throughput_gpu.md" "$OUT/" 2>/dev/null
  note "- throughput (benchmarks/llm_throughput.py, ${TP_S} s limit): exit $RC$([ $RC = 124 ] && echo ' (time limit)')"
  [ -f "$OUT/llm_throughput_gpu.md" ] && grep '^| ' "$OUT/llm_throughput_gpu.md" | tee -a "$SUMMARY"
else
  note "- throughput: not run (no $GPU_MODEL/config.json or no trl)"
fi
note "- wall: $(( $(date +%s) - START )) s"
exit 0
