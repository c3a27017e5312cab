# pdf2md: every set-up step lives here, so a fresh machine needs only `make demo` / `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov lives in its own venv: its pins would downgrade boto3/botocore under Airflow's provider.
CHECKOV := .venv-checkov/bin/checkov

.PHONY: demo airflow test bench bench-gpu install clean lock

install: $(STAMP)

# torch goes first: on these machines `torch==2.13.0` is a local CPU build; anything that lets pip
# choose would pull the newest CUDA build instead. constraints.txt pins everything else.
# Debian's chromium serves the UI's browser test (sudo when not root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml constraints.txt
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[airflow,inventory,ocr,dolphin,local,dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m pdf2md.demo

# The real Airflow UI (airflow standalone) on the local AWS with the sample PDFs uploaded; Ctrl-C stops it all.
airflow: $(STAMP)
	$(BIN)/python -m pdf2md.local_airflow

test: $(STAMP) $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/mypy
	CHECKOV_BIN=$(CHECKOV) $(BIN)/python -m pytest -q

$(CHECKOV): constraints-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -c constraints-checkov.txt checkov==3.3.30
	touch $@

bench: $(STAMP)
	$(BIN)/python bench/text_quality.py
	$(BIN)/python bench/nasty.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/scale.py --keys 10000000 --array-size 10000

bench-gpu: $(STAMP)
	$(BIN)/python bench/dolphin_gpu.py --tiny 1.x
	$(BIN)/python bench/dolphin_gpu.py --tiny v2
	$(BIN)/python bench/dolphin_gpu.py --real-size all
	$(BIN)/python bench/dolphin_host.py

# Refresh the pins after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^pdf2md' > constraints.txt

clean:
	rm -rf $(VENV) .venv-checkov .bench-venvs demo-output .pytest_cache
