# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run status burst demo test test-fast lint typecheck pytest soak bench bench-query bench-leases bench-loop bench-fleets clean

RUN_STAMP := $(VENV)/.installed-run

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The tools and test dependencies (a superset of what `make run` needs).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

# `make run` installs only what running needs, so a fresh clone is up sooner.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python -m devstack

# Where `make run` keeps its state and writes devstack.env (the settings' ACADEMY_VAR_DIR).
DEVSTACK_VAR := $(or $(ACADEMY_VAR_DIR),var)

# scaling_status against what `make run` started (its endpoint, queue, key and fleets).
status: $(RUN_STAMP)
	@test -f $(DEVSTACK_VAR)/devstack.env || { echo "error: $(DEVSTACK_VAR)/devstack.env not found: start the stack with make run first"; exit 2; }
	set -a; . $(abspath $(DEVSTACK_VAR))/devstack.env; set +a; $(BIN)/python manage.py scaling_status

# COUNT videos uploaded at once into the stack `make run` started (manage.py
# video_upload_burst: each sends its SQS job message); FLEET=ai: COUNT job messages sent to
# that fleet's queue instead (python -m devstack.consumer send). Watch with make status.
COUNT ?= 30
FLEET ?= video
burst: $(RUN_STAMP)
	@test -f $(DEVSTACK_VAR)/devstack.env || { echo "error: $(DEVSTACK_VAR)/devstack.env not found: start the stack with make run first"; exit 2; }
	set -a; . $(abspath $(DEVSTACK_VAR))/devstack.env; set +a; \
	if [ '$(FLEET)' = video ]; then $(BIN)/python manage.py video_upload_burst --count '$(COUNT)'; \
	else $(BIN)/python -m devstack.consumer send --fleet '$(FLEET)' --count '$(COUNT)'; fi

# Upload VIDEOS videos into the stack `make run` started and watch the loop close:
# backlog published, desired capacity up, workers claim, videos READY, capacity back down.
VIDEOS ?= 10
demo: $(RUN_STAMP)
	$(BIN)/python -m devstack.demo --videos $(VIDEOS)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

# The suite in PYTEST_WORKERS parallel processes (pytest-xdist). Most of the long tests
# wait on 10 s slots and real processes rather than compute, so 4 workers on 2 cores;
# tests/conftest.py starts the longest first and keeps xdist_group tests on one worker.
# PYTEST_WORKERS=0 runs in this one process (pytest's own order).
PYTEST_WORKERS ?= 4
PYTEST_PARALLEL = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder)

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The inner loop: ruff, then every test but the multi-minute scenarios (-m 'not slow'),
# in parallel; no mypy (make typecheck). make test is what CI runs.
test-fast: $(STAMP) lint
	$(BIN)/pytest $(PYTEST_PARALLEL) -m 'not slow' $(PYTEST_ARGS)

# Backlog query with and without the partial index on a PostgreSQL database of
# its own (academy_bench on BENCH_DATABASE_URL's server). Not part of `make test`.
BENCH_ROWS ?= 1000000
bench-query: $(STAMP)
	$(BIN)/python -m bench.backlog_query --rows $(BENCH_ROWS)

# Video leases at 1M videos (academy_bench_leases): a renewal's cost, the recovery
# queries with and without their partial index, and how many renewing workers one
# gunicorn sync worker serves (about a minute and a half). Not part of `make test`.
bench-leases: $(STAMP)
	$(BIN)/python -m bench.leases

# Every benchmark, one table (bench/run_all.py): the backlog query at 10k/1M/10M videos
# with and without the index, one tick in-app versus the old HTTP path, the Celery
# worker's memory and CPU over 100 ticks, and video leases (bench/leases.py).
# PostgreSQL and Redis (db 12) on loopback; about 6 minutes, most of it the 10M-row
# fill and the lease load. Not part of `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# The live local loop against the simulator (bench/loop_vs_sim.py): a burst of 30 videos
# of 20 s, then a spike of 120, each through the whole loop on this machine (PostgreSQL
# database academy_bench_loop, Redis db 11, moto, gunicorn, celery, the control plane and
# real video workers) and through simulate_scaling's model; prints both timelines and
# their differences. About 15 minutes. Not part of `make test`.
bench-loop: $(STAMP)
	$(BIN)/python -m bench.loop_vs_sim --videos 30
	$(BIN)/python -m bench.loop_vs_sim --videos 120

# A tick's time and AWS calls per slot with 1, 5 and 20 fleets (SQS-measured, database-
# measured, mixed), with and without one hung fleet (bench/fleets.py): PostgreSQL
# (academy_bench_fleets) and moto on loopback; about a minute. Not part of `make test`.
BENCH_FLEETS_SLOTS ?= 5
bench-fleets: $(STAMP)
	$(BIN)/python -m bench.fleets --slots $(BENCH_FLEETS_SLOTS)

clean:
	rm -rf $(VENV) var

# The real stack under seeded faults for SOAK_MINUTES (default 10); prints one table.
# Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.
SOAK_MINUTES ?= 10
soak: $(STAMP)
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m bench.soak

# The wheels another Django project installs (packaging/build.py): dist/academy_scaling-*.whl
# (the scaling app) and dist/academy_worker-*.whl (the Django-free worker client).
.PHONY: dists
dists: $(STAMP)
	$(BIN)/python packaging/build.py --out dist

# The whole local loop (make run's processes, real video workers) under bursts of uploads
# and seeded faults for SOAK_LOOP_MINUTES (default 10), then a ledger per video and one
# verdict table (bench/soak_loop). Own PostgreSQL database (academy_soak_loop) and a free
# Redis database; about SOAK_LOOP_MINUTES plus a few minutes of drain.
.PHONY: soak-loop
SOAK_LOOP_MINUTES ?= 10
SOAK_LOOP_SEED ?= 20261204
soak-loop: $(STAMP)
	$(BIN)/python -m bench.soak_loop --minutes $(SOAK_LOOP_MINUTES) --seed $(SOAK_LOOP_SEED)
