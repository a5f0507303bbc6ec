# Developer entry points. `make test` is the one command that runs every test from scratch.
# PYTHON is the interpreter whose environment gets the package and runs the tests (.ci/run gives
# it a virtual environment of its own).
PYTHON ?= python3
ACTIONLINT ?= $(HOME)/.cache/noetl-tools/actionlint-v1.7.12/actionlint
LINTED := operator tests benchmarks plugin-images

.PHONY: test setup lint

setup:
	PYTHON=$(PYTHON) bash .ci/setup

test: setup lint
	$(PYTHON) -m pytest

lint: setup
	$(PYTHON) -m ruff check $(LINTED)
	$(PYTHON) -m ruff format --check $(LINTED)
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy plugin-images/build.py
	$(PYTHON) -c 'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())'
	@if [ -x $(ACTIONLINT) ]; then $(ACTIONLINT) -no-color; \
	else echo "lint: no actionlint at $(ACTIONLINT), workflows not checked"; fi

# --- Images, and a local cluster for users with Docker: kind, the images, the chart, a demo run. ---
# `make kind-up images deploy demo` gives a cluster running the hello example; `make kind-down`
# removes it. The images get the tags the chart's values and the operator use by default, so
# loading them into kind makes them present on the nodes; deploy names those tags and forbids
# pulling them. BUILDER may be docker (the default), podman or buildah: plugin-images/build.py
# builds only what changed (see docs/install.md).
REGISTRY ?= ghcr.io/noetl
BUILDER ?= docker
ifndef VERSION
VERSION := $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
endif
PLUGINS := shell python http postgres duckdb
KIND_CLUSTER ?= noetl
NAMESPACE ?= noetl-system
DEMO_NAMESPACE ?= default
OPERATOR_IMAGE := $(REGISTRY)/noetl-operator:$(VERSION)
PLUGIN_IMAGES := $(foreach p,$(PLUGINS),$(REGISTRY)/noetl-plugin-$(p):$(VERSION))

.PHONY: kind-up kind-down images kind-load deploy demo chart-crds

kind-up:
	kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

# The images go into kind only when a kind cluster of that name is there.
images:
	$(PYTHON) plugin-images/build.py --builder $(BUILDER) --registry $(REGISTRY) --version $(VERSION)
	@if command -v kind > /dev/null && kind get clusters 2> /dev/null | grep -qx '$(KIND_CLUSTER)'; then \
		$(MAKE) --no-print-directory kind-load; \
	else echo "images: no kind cluster $(KIND_CLUSTER), so nothing loaded into one"; fi

# kind reads Docker's images directly; podman's and buildah's (containers-storage) as an archive.
kind-load:
ifeq ($(BUILDER),docker)
	kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE) $(PLUGIN_IMAGES)
else
	podman save --multi-image-archive --output .noetl-images.tar $(OPERATOR_IMAGE) $(PLUGIN_IMAGES)
	kind load image-archive --name $(KIND_CLUSTER) .noetl-images.tar; status=$$?; rm -f .noetl-images.tar; exit $$status
endif

deploy:
	helm upgrade --install noetl-operator charts/noetl-operator --namespace $(NAMESPACE) --create-namespace \
		--set image.repository=$(REGISTRY)/noetl-operator --set image.tag=$(VERSION) --set image.pullPolicy=Never \
		$(foreach p,$(PLUGINS),--set plugins.images.$(p)=$(REGISTRY)/noetl-plugin-$(p):$(VERSION)) \
		--set plugins.pullPolicy=Never --wait --timeout 5m

# One run of playbooks/hello.yaml. An Execution is one run, so it gets a fresh generated name.
demo:
	kubectl apply -n $(DEMO_NAMESPACE) -f playbooks/hello.yaml
	name=$$(printf '%s\n' 'apiVersion: noetl.io/v1alpha1' 'kind: Execution' \
		'metadata: {generateName: hello-}' 'spec: {playbookRef: {name: hello}}' \
		| kubectl create -n $(DEMO_NAMESPACE) -o name -f -) && \
	echo "$$name" && \
	kubectl wait -n $(DEMO_NAMESPACE) "$$name" --for=condition=Succeeded --timeout=300s && \
	kubectl get -n $(DEMO_NAMESPACE) "$$name" -o jsonpath='{.status.result}{"\n"}'

# The chart carries copies of the generated CRDs (Helm installs a chart's crds/ directory).
chart-crds:
	cp crds/noetl.io_*.yaml charts/noetl-operator/crds/
