# The README's first two commands:
#   make book   build the book (demo profile, embedded cohort) into book/_build/html
#   make test   run the test suite (smoke profile); .ci/run calls exactly this
# Both create the virtual environment on first use. PROFILE=smoke|demo|paper selects another profile;
# WEIGHTS=train retrains every network instead of using the shipped checkpoints/<profile>.
#   make checkpoints   retrain and re-export the shipped checkpoints (recorded run: minutes on a GPU, about a day on 2 CPU cores)

PROFILE ?= demo
RUN_DIR ?=
OVERRIDES ?= {}
WEIGHTS ?= auto
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test notebooks checkpoints lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch pulls several GB of CUDA wheels
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

book: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m ldm.book --profile $(PROFILE) --run-dir "$(RUN_DIR)" --overrides '$(OVERRIDES)' --weights "$(WEIGHTS)"

test: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest --durations=25

notebooks: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m ldm.book --profile $(PROFILE) --run-dir "$(RUN_DIR)" --weights "$(WEIGHTS)" --no-build

checkpoints: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m ldm.ship --profile $(PROFILE)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf book/_build book/notebooks runs
