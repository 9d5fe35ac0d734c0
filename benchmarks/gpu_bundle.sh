#!/usr/bin/env bash
# What benchmarks/gpu_check.sh needs on a GPU machine without network, gathered here (with PyPI):
#   .gpu-wheels/  trl, datasets and their pure-Python needs, transformers 5.24 (for Python 3.12)
#   .gpu-model/   SmolLM2-135M-Instruct's config and tokenizer, no weights (random-init throughput)
# Both folders are in .gitignore; carry them to the GPU machine and there run
#   pip install -q --no-index --no-deps --target /tmp/site .gpu-wheels/*.whl
#   PYTHONPATH=/tmp/site OUT=... bash benchmarks/gpu_check.sh
set -eu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p .gpu-wheels .gpu-model
for pkg in trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 transformers==5.24.0; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu-wheels "$pkg"
done
MODEL="$("$PY" -c 'from windalign.lm.loading import resolve_model; print(resolve_model("smollm2"))')"
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
  if [ -f "$MODEL/$f" ]; then cp "$MODEL/$f" .gpu-model/; fi
done
du -sh .gpu-wheels .gpu-model
