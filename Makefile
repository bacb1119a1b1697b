# edgekit: two commands on a fresh machine.
#   make demo   installs everything into .venv and runs the main job on the bundled model
#   make test   installs everything and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edgekit-installed
# pytest workers: the suite is sized for 2 cores.
JOBS   ?= 2
# Exact versions of every Python package (`make lock` refreshes it).
LOCK   := requirements.lock
# torch's x86_64 wheel on PyPI is a CUDA build of several GB; the CPU wheel comes
# from PyTorch's own index, named here rather than left to the machine's pip config.
TORCH_INDEX   ?= https://download.pytorch.org/whl/cpu
TORCH_VERSION := 2.13.0+cpu
# Constraints reach pip's isolated build environments too (setuptools is pinned).
PIP    := PIP_CONSTRAINT=$(CURDIR)/$(LOCK) $(PY) -m pip

.PHONY: demo test install system-deps lint clean bench lock

install: system-deps $(STAMP)

# Debian toolchains later stages need (cross compilers, QEMU boards, MQTT broker).
# Installed when running as root; otherwise the script prints the exact apt command.
system-deps:
	@bash scripts/install_system_deps.sh

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet pip
	$(PIP) install --quiet --no-deps --retries 1 --index-url $(TORCH_INDEX) \
		"torch==$$(if [ "$$(uname -m)" = x86_64 ]; then echo $(TORCH_VERSION); else echo $(TORCH_VERSION) | cut -d+ -f1; fi)"
	$(PIP) install --quiet -e '.[all]'
	@touch $(STAMP)

demo: install
	$(VENV)/bin/edgekit demo

test: install
	$(PY) -m pytest -n $(JOBS) -q tests hwtests

lint: install
	$(PY) -m ruff check edgekit tests hwtests bench tools conftest.py

# Re-resolve every dependency at its newest allowed version into $(LOCK).
lock:
	TORCH_INDEX=$(TORCH_INDEX) TORCH_VERSION=$(TORCH_VERSION) PYTHON=$(PYTHON) bash scripts/lock.sh

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
