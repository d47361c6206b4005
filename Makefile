# cartsync: `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
# Evaluated once, so the widget and the server carry the same version.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || date +%s)
VERSION := $(VERSION)
# Flags for `make run`, e.g. make run ARGS='-addr :9090'.
ARGS ?=

SERVER_PKG := ./syncserver/cmd/cartsync
WASM_PKG := ./app
# The example of another module using the client engine (a module of its own).
EXAMPLE := shared/syncclient/example/cartwatch
# The js/wasm side of the tree: app/ and shared/ where they exist.
JS_PKGS = $(patsubst %,./%/...,$(wildcard app shared))
STATICCHECK = $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: help
help: ## Show this help
	@echo 'Usage: make TARGET [VERSION=...]'
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: run
run: build ## Build everything; serve the cart on :8080 and the demo storefront on :8081
	./bin/cartsync -demo-addr 127.0.0.1:8081 $(ARGS)

.PHONY: build
build: $(if $(wildcard app),wasm) ## Build the widget and the server binary bin/cartsync
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/cartsync $(SERVER_PKG)

# web/ is what the server serves (-web): the built widget, and copies of
# the sources in assets/ (icons, CSS, embed.js, the demo storefront).
.PHONY: web
web: ## Copy assets/ (the widget's and demo's sources) into web/, the folder the server serves
	@mkdir -p web
	@cd assets && for f in *; do rm -rf "../web/$$f"; done
	cp -R assets/. web/

.PHONY: wasm
wasm: wasm-exec-check web ## Build web/app.wasm (+ .br, .gz), copy assets/ into web/ and serve the tracked wasm_exec.js with it
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags "-s -w" -o web/app.wasm $(WASM_PKG)
	$(GO) run ./syncserver/cmd/precompress web/app.wasm
	cp wasm_exec.js web/wasm_exec.js

# wasm_exec.js is the JavaScript half of Go's wasm ABI: the tracked copy is
# what the widget runs, and it must be the one of the Go that builds
# app.wasm. After a Go upgrade, `make wasm-exec` takes the new one.
GOROOT_WASM_EXEC = $(shell $(GO) env GOROOT)/lib/wasm/wasm_exec.js

.PHONY: wasm-exec-check
wasm-exec-check:
	@cmp -s wasm_exec.js "$(GOROOT_WASM_EXEC)" || { \
		echo "wasm_exec.js differs from the one of $$($(GO) env GOVERSION) ($(GOROOT_WASM_EXEC));" >&2; \
		echo "app.wasm needs the JavaScript of the Go that builds it: run 'make wasm-exec' and commit wasm_exec.js." >&2; \
		exit 1; }

.PHONY: wasm-exec
wasm-exec: ## Take wasm_exec.js from the Go in use (after a Go upgrade; commit it)
	cp "$(GOROOT_WASM_EXEC)" wasm_exec.js

.PHONY: test
test: ## Run vet and all tests, native and js/wasm in headless Chromium, with real Postgres and Redis
	scripts/test.sh

# How long each target runs in `make fuzz`, and which targets (a regexp).
FUZZTIME ?= 10m
FUZZ ?= .

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 10m); FUZZ=regexp picks targets
	scripts/fuzz.sh -t '$(FUZZTIME)' '$(FUZZ)'

.PHONY: bench
bench: wasm ## Run the benchmarks (scripts/bench.sh) and report the widget size
	@test -f scripts/bench.sh || { echo 'make bench: scripts/bench.sh does not exist yet' >&2; exit 1; }
	bash scripts/bench.sh

.PHONY: scale
scale: ## Several server instances on one Postgres and one Redis: SCALE_CLIENTS (50000) idle connections across SCALE_INSTANCES (3), the peer workload on top
	bash scripts/bench.sh scale -clients $(or $(SCALE_CLIENTS),50000) -instances $(or $(SCALE_INSTANCES),3)

.PHONY: lint
lint: tools ## Check gofmt, go vet and staticcheck, native and js/wasm
	@out=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './vendor/*' -print0 | \
		xargs -0 -r gofmt -l); \
	if [[ -n $$out ]]; then echo 'gofmt -w needed on:'; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd $(EXAMPLE) && $(GO) mod tidy -diff && $(GO) vet ./... && $(abspath $(STATICCHECK)) ./...
ifneq ($(strip $(JS_PKGS)),)
	GOOS=js GOARCH=wasm $(GO) vet $(JS_PKGS)
	GOOS=js GOARCH=wasm $(STATICCHECK) $(JS_PKGS)
endif

.PHONY: tools
tools: ## Install the pinned Go tools (staticcheck, wasmbrowsertest)
	scripts/install-deps.sh go

.PHONY: deps
deps: ## Install everything the build and tests need (Debian packages need root)
	scripts/install-deps.sh

.PHONY: services-up
services-up: ## Start throwaway Postgres and Redis; prints the exports to eval
	scripts/testenv.sh start
	@scripts/testenv.sh env

.PHONY: services-down
services-down: ## Stop what services-up started
	scripts/testenv.sh stop

.PHONY: clean
clean: ## Remove build outputs (bin/, everything in web/ but its README)
	rm -rf bin
	find web -mindepth 1 -not -name README.md -delete
