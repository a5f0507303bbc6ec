# The http plugin: makes one HTTP request with httpx. The request comes in NOETL_INPUT_JSON,
# the outcome goes to /dev/termination-log (see operator/noetl/plugins/runtime.py).
# Build context: the directory plugin-images/build.py prepares (`make images`): its packages,
# installed from wheels on the host, are in <architecture>/http/.
ARG BASE_IMAGE=ghcr.io/noetl/noetl-base:0.1.0
FROM ${BASE_IMAGE}
ARG TARGETARCH
USER 0
# Packages first: their layers stay cached while only the noetl sources change.
COPY ${TARGETARCH}/http/ /usr/local/lib/python3.11/dist-packages/
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /usr/local/lib/python3.11
COPY noetl/ /usr/local/lib/python3.11/dist-packages/noetl/
RUN python3 -m compileall -q --invalidation-mode unchecked-hash \
    /usr/local/lib/python3.11/dist-packages/noetl
USER 65532
ENTRYPOINT ["python3", "-m", "noetl.plugins.http"]
