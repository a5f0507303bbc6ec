# The NoETL operator: `noetl operator`; the chart passes its options as arguments and its
# settings as NOETL_* environment variables.
# Build context: the directory plugin-images/build.py prepares (`make images`): every dependency,
# installed from wheels on the host, is in <architecture>/operator/.
ARG BASE_IMAGE=ghcr.io/noetl/noetl-base:0.1.0
FROM ${BASE_IMAGE}
ARG TARGETARCH
USER 0
# Packages first: their layers stay cached while only the noetl sources change.
COPY ${TARGETARCH}/operator/ /usr/local/lib/python3.11/dist-packages/
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /usr/local/lib/python3.11
COPY noetl/ /usr/local/lib/python3.11/dist-packages/noetl/
RUN python3 -m compileall -q --invalidation-mode unchecked-hash \
    /usr/local/lib/python3.11/dist-packages/noetl
USER 65532
# Prometheus metrics, then kopf's /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["python3", "-m", "noetl", "operator"]
