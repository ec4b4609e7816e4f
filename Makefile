# Two commands on a fresh machine: `make repro` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install repro exp test test-slow bench grid clean-venv

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch/torchvision first, pinned to the builds on this machine's disk (others download gigabytes).
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e '.[test]'
	# tcmalloc is optional; the heavy stages preload it when present (src/advaudio/runtime.py), which makes CPU
	# training and attacks 1.2-3.5x faster. Installed here when apt-get can run as root.
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1 || echo "tcmalloc not installed (optional)"; fi
	touch $@

install: $(VENV)/.installed

repro: install
	dvc repro

# make exp ARGS="-S model=vgg16": dvc exp run in the workspace; a failed run puts params.yaml back as it was
# (src/advaudio/experiment.py)
exp: install
	$(PY) -m advaudio.experiment $(ARGS)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/run_all.py

# make grid MODELS="resnet56 vgg16" REPRESENTATIONS="stft dwt" JOBS=2 [EXECUTOR=slurm GRID_ARGS="--wait ..."]
MODELS ?= alexnet googlenet resnet18 resnet34 resnet56 vgg16
REPRESENTATIONS ?= stft dwt stft_tonnetz dwt_tonnetz
JOBS ?= 1
EXECUTOR ?= local
grid: install
	$(PY) -m advaudio.report.grid --executor $(EXECUTOR) --models $(MODELS) --representations $(REPRESENTATIONS) \
	  --jobs $(JOBS) $(GRID_ARGS)
