# The one place the project's commands are spelled out. `make test` is the
# test command the README and .ci/run use.

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help run test bench chaos lint temporal clean

help:
	@echo "make run       the whole system on this machine and the demo (go run ./starter up)"
	@echo "make test      vet, workflowcheck, compose check, all tests"
	@echo "make lint      gofmt, go vet, staticcheck"
	@echo "make bench     the benchmark"
	@echo "make chaos     the fault-injection run"
	@echo "make temporal  build the pinned Temporal CLI now (the first build takes minutes)"
	@echo "make clean     remove build outputs (keeps .devdata, the local databases)"

run:
	go run ./starter up

test:
	go vet ./...
	@# The workflows package may not exist yet on a fresh branch.
	@if ls workflows/*.go >/dev/null 2>&1; then \
		echo "go tool workflowcheck -config workflowcheck.config.yaml ./workflows/..."; \
		go tool workflowcheck -config workflowcheck.config.yaml ./workflows/...; \
	else \
		echo "workflowcheck: no workflows package yet, nothing to check"; \
	fi
	@# Installing tools is .ci/run's job; here a missing docker-compose is said, not hidden.
	@if command -v docker-compose >/dev/null 2>&1; then \
		echo "docker-compose config -q"; docker-compose config -q; \
	else \
		echo "docker-compose not installed: docker-compose.yml NOT checked (.ci/run installs it)"; \
	fi
	go test -count=1 -timeout 25m ./...

# The fan-out benchmark (bench/README.md): N=1000 followers, smartcopy and its
# baselines, non-zero exit on a lost, doubled or wrong copy. Flags go in
# BENCH_FLAGS, e.g. make bench BENCH_FLAGS='-n 200 -profile' (go run ./bench -h).
bench:
	go run ./bench $(BENCH_FLAGS)

# Until ./chaos is a main package this target says so and fails, so that no
# one reads a result into it.
chaos:
	@if grep -qs '^package main' chaos/*.go; then go run ./chaos; \
	else echo "make chaos: the fault-injection run (./chaos) is not built yet"; exit 1; fi

lint:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt -l reports unformatted files:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

temporal:
	@go -C tools tool -n temporal
	@echo "(run it with: go -C tools tool temporal <args>)"

clean:
	rm -rf bin
	rm -f *.out *.test
	go clean -testcache
