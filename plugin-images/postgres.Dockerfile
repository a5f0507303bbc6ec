# The postgres plugin: runs SQL against PostgreSQL with psycopg. Reads its request from NOETL_INPUT_JSON
# and writes its result to /dev/termination-log (see operator/noetl/plugins/runtime.py).
ARG BASE_IMAGE=ghcr.io/noetl/noetl-base:0.1.0
FROM ${BASE_IMAGE}
USER 65532
ENTRYPOINT ["python", "-m", "noetl.plugins.postgres"]
