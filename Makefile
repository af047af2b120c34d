PY ?= python3

.PHONY: build test test-fast lint bench corpus model sanitize fuzz example

build:
	$(PY) -m pip install --no-build-isolation -e .

# the README's test command
test:
	$(PY) -m pytest -q

test-fast:
	$(PY) -m pytest -q -m "not slow"

lint:
	$(PY) native/gen_tables.py --check
	ruff check fastscan tests benchmarks fuzz native/gen_tables.py
	ruff format --check fastscan tests benchmarks fuzz native/gen_tables.py
	mypy
	cython-lint native/*.pyx native/*.pxi

bench:
	$(PY) benchmarks/bench_tokenizer.py
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_bulk.py

corpus:
	$(PY) -P -m fastscan corpus out/corpus --seed 0 --scale medium

# the shipped model has one home, models/ (the package folder fastscan/models links to it)
model: corpus
	$(PY) -P -m fastscan train out/corpus --out models --seed 0

example:
	$(PY) -P -m fastscan corpus out/example --seed 1 --scale small
	$(PY) -P -m fastscan bulk out/example --workers 2 --out out/example-verdicts.parquet; \
	  $(PY) -P -m fastscan report out/example-verdicts.parquet || [ $$? -eq 1 ]  # 1: it holds attacks

# native tokenizer under AddressSanitizer + UBSan, in a scratch copy (the in-tree .so is untouched)
sanitize:
	sh fuzz/sanitize.sh /tmp/fastscan-asan

# coverage-guided atheris campaign; corpora grow in out/fuzz/corpus
fuzz:
	$(PY) fuzz/run.py --minutes 30 --work out/fuzz
