# edgekit: two commands on a fresh machine.
#   make demo   installs everything into .venv and runs the main job on the bundled model
#   make test   installs everything and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edgekit-installed
# pytest workers: the suite is sized for 2 cores.
JOBS   ?= 2

.PHONY: demo test install system-deps lint clean bench

install: system-deps $(STAMP)

# Debian toolchains later stages need (cross compilers, QEMU boards, MQTT broker).
# Installed when running as root; otherwise the script prints the exact apt command.
system-deps:
	@bash scripts/install_system_deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU wheel (other specs download several GB of CUDA).
	$(PY) -m pip install --quiet -e '.[all]'
	@touch $(STAMP)

demo: install
	$(VENV)/bin/edgekit demo

test: install
	$(PY) -m pytest -n $(JOBS) -q tests hwtests

lint: install
	$(PY) -m ruff check edgekit tests

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
