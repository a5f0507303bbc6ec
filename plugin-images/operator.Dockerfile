# The NoETL operator: `noetl operator`; the chart passes its options as arguments and its
# settings as NOETL_* environment variables.
ARG BASE_IMAGE=ghcr.io/noetl/noetl-base:0.1.0
FROM ${BASE_IMAGE}
USER 65532
# Prometheus metrics, then kopf's /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "noetl", "operator"]
