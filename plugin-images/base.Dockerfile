# The base of every NoETL image: Python, the noetl package with its dependencies, and the
# unprivileged user (uid 65532) that the operator and every step run as.
# Build context: the repository root, e.g. `make images`.
FROM python:3.11-slim

# No .pyc files: the images run with a read-only root filesystem, and stdout unbuffered so a
# step's output reaches the pod log before its result.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /src/
COPY operator/noetl /src/operator/noetl
RUN pip install /src && rm -rf /src

RUN groupadd --gid 65532 noetl \
 && useradd --uid 65532 --gid 65532 --create-home --home-dir /home/noetl --shell /usr/sbin/nologin noetl
WORKDIR /home/noetl
USER 65532
