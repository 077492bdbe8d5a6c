# The README's two commands: `make demo` and `make test`. Everything installs itself.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast lint system-tools clean

setup: $(STAMP)

# Torch first, pinned: on the dev machines these versions come from the local disk. A torch that is
# already in the venv (e.g. a CPU-only build put there first, see the README) is kept as it is.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@if $(PY) -c "import torch, torchvision" 2>/dev/null; then \
		echo "make setup: keeping the installed torch $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	else \
		$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS); \
	fi
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,onnx]'
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/convscope live --source demo --model efficientnet_lite0 --open

system-tools:
	@bash scripts/system-tools.sh

# The linter first (ruff: seconds), then two workers for everything but the tests that assert a wall-clock bound (marker "timing":
# shutdown within a second, reconnect within the read timeout); those run alone afterwards.
# Exit status 5 is pytest's "no test selected" (a PYTEST_ARGS filter), not a failure.
# One torch thread per worker: two workers already fill two cores, and OpenMP teams of two threads
# per worker oversubscribe them (measured 3x slower on the ResNet-50 captum test under load).
test: setup system-tools lint
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile -m "not timing" $(PYTEST_ARGS)
	$(PY) -m pytest -m timing $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-fast: setup
	$(PY) -m pytest -m "not e2e and not stream and not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check convscope tests benchmarks scripts examples

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
