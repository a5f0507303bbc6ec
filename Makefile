# Developer entry points. `make test` is the one command that runs every test from scratch.
PYTHON ?= python3

.PHONY: test setup lint

setup:
	bash .ci/setup

test: setup lint
	$(PYTHON) -m pytest

lint: setup
	$(PYTHON) -m ruff check operator tests benchmarks
	$(PYTHON) -m ruff format --check operator tests benchmarks
	$(PYTHON) -m mypy
	$(PYTHON) -c 'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())'

# --- A local cluster for users with Docker: kind, the images, the chart, a demo run. ---
# `make kind-up images deploy demo` gives a cluster running the hello example; `make kind-down`
# removes it. The images get the tags the chart's values and the operator use by default, so
# `kind load` makes them present on the nodes; deploy names those tags and forbids pulling them.
REGISTRY ?= ghcr.io/noetl
ifndef VERSION
VERSION := $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
endif
PLUGINS := shell python http postgres duckdb
KIND_CLUSTER ?= noetl
NAMESPACE ?= noetl-system
DEMO_NAMESPACE ?= default
BASE_IMAGE := $(REGISTRY)/noetl-base:$(VERSION)
OPERATOR_IMAGE := $(REGISTRY)/noetl-operator:$(VERSION)
PLUGIN_IMAGES := $(foreach p,$(PLUGINS),$(REGISTRY)/noetl-plugin-$(p):$(VERSION))

.PHONY: kind-up kind-down images image-base image-operator $(addprefix image-,$(PLUGINS)) deploy demo chart-crds

kind-up:
	kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

images: image-operator $(addprefix image-,$(PLUGINS))
	kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE) $(PLUGIN_IMAGES)

image-base:
	docker build -f plugin-images/base.Dockerfile -t $(BASE_IMAGE) .

# Every other image is built FROM the base.
image-operator: image-base
	docker build -f plugin-images/operator.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(OPERATOR_IMAGE) .

$(addprefix image-,$(PLUGINS)): image-%: image-base
	docker build -f plugin-images/$*.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(REGISTRY)/noetl-plugin-$*:$(VERSION) .

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
