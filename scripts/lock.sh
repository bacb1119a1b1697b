#!/usr/bin/env bash
# `make lock`: resolves edgekit[all] afresh in a throw-away venv and writes the exact
# versions to requirements.lock, which `make demo` and `make test` install from.
# Run `make test` afterwards: the lock is only worth committing if the suite passes.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
torch_index=${TORCH_INDEX:?TORCH_INDEX is set by the Makefile}
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip setuptools
# torch from PyTorch's CPU index (PyPI's x86_64 wheel is a CUDA build of several GB)
"$venv/bin/python" -m pip install --quiet --no-deps --retries 1 --index-url "$torch_index" "torch==${TORCH_VERSION:?}"
"$venv/bin/python" -m pip install --quiet -e '.[all]'
{
  echo "# Exact versions that 'make test' passed with; regenerate with 'make lock'."
  echo "# Resolved on $(uname -m) Linux with $("$venv/bin/python" -V). torch comes from"
  echo "# PyTorch's CPU index ($torch_index); see the Makefile."
  "$venv/bin/python" -m pip freeze --all --exclude-editable \
    | grep -v '^#' \
    | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1+cpu ; platform_machine == "x86_64"\ntorch==\1 ; platform_machine != "x86_64"/' \
    | sed -E 's/^(tflite[_-]micro==.*)$/\1 ; platform_machine == "x86_64"/'
} > requirements.lock.new
mv requirements.lock.new requirements.lock
echo "wrote requirements.lock ($(grep -vc '^#' requirements.lock) pins); now run: make test"
