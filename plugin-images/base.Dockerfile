# The base of every NoETL image: Debian bookworm's python3 (3.11) and the unprivileged user 65532
# that the operator and every step run as. The Python packages are in each image's own layers,
# so this one changes only with Debian's updates.
# Build context: the directory plugin-images/build.py prepares (`make images`).
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive

# upgrade: the security fixes published since the Debian image was made.
RUN apt-get update \
 && apt-get upgrade -y \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 65532 noetl \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin noetl

# Made for a read-only root filesystem: /tmp (an emptyDir in step pods) is the one writable
# place, so it is HOME, TMPDIR and the working directory. Bytecode is compiled when an image is
# built and never written at run time; output is unbuffered so it reaches the pod log in order.
ENV HOME=/tmp \
    TMPDIR=/tmp \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 65532
