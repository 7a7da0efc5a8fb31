# mirbench worker image: the CLI plus everything a build needs, on the CPU.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MIRBENCH_ARTIFACTS=/data/artifacts

# torch first and pinned: a bare `torch` requirement pulls a multi-GB CUDA build. To get the CPU
# build, point pip at a CPU wheel index: --build-arg PIP_EXTRA_INDEX_URL=<index>.
ARG TORCH_SPEC=torch==2.13.0
ARG PIP_EXTRA_INDEX_URL=
RUN pip install "${TORCH_SPEC}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY builder ./builder
COPY flows ./flows
COPY taxonomy ./taxonomy
COPY seeds ./seeds
RUN pip install . && useradd --create-home mirbench && mkdir -p /data && chown mirbench /data
USER mirbench
VOLUME /data
ENTRYPOINT ["mirbench"]
CMD ["--help"]
