# The README's first two commands:
#   make book   build the book (demo profile, embedded cohort) into book/_build/html
#   make test   run the test suite (smoke profile); .ci/run calls exactly this
# Both create the virtual environment on first use. PROFILE=smoke|demo|paper selects another profile;
# WEIGHTS=train retrains every network instead of using the shipped checkpoints/<profile>.
#   make checkpoints   retrain and re-export the shipped checkpoints (recorded run: minutes on a GPU, about a day on 2 CPU cores)
#   make lock          re-resolve requirements/cpu.txt and gpu.txt (exact versions + hashes) from pyproject.toml

PROFILE ?= demo
RUN_DIR ?=
OVERRIDES ?= {}
WEIGHTS ?= auto
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements/cpu.txt
# torch's CPU build comes from pip's find-links (PIP_FIND_LINKS) where a machine has one, else add PyTorch's
# CPU wheel index with PIP_EXTRA_INDEX_URL; every other package comes from PyPI, all checked by hash
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml requirements/build.in --extra dev --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --generate-hashes --custom-compile-command "make lock" --quiet

.PHONY: book test notebooks checkpoints lint lock clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# exactly the locked versions, each checked against its hash; then the package itself, built with the locked setuptools
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

book: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m ldm.book --profile $(PROFILE) --run-dir "$(RUN_DIR)" --overrides '$(OVERRIDES)' --weights "$(WEIGHTS)"

test: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest --durations=25

notebooks: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m ldm.book --profile $(PROFILE) --run-dir "$(RUN_DIR)" --weights "$(WEIGHTS)" --no-build

checkpoints: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m ldm.ship --profile $(PROFILE)

lock: $(STAMP)
	$(UV_COMPILE) --override requirements/torch-cpu.txt $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS)) -o requirements/cpu.txt
	$(UV_COMPILE) --override requirements/torch-gpu.txt -o requirements/gpu.txt

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf book/_build book/notebooks runs
