# syntax=docker/dockerfile:1.7
# The GPU worker (AWS Batch on g4dn: one T4, fp16): Dolphin for pages without a usable text layer,
# RapidOCR as the fallback. Build from the repository root:
#   docker build -f containers/gpu.Dockerfile -t pdf2md-gpu .
# Bake a model in with a named build context (a local Dolphin checkpoint dir):
#   docker build -f containers/gpu.Dockerfile --build-context model=/path/to/Dolphin -t pdf2md-gpu .
# Without it /opt/model is empty: mount a model there, or set PDF2MD_MODEL_URI to sync one from S3.

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu22.04

# Replaced by `--build-context model=DIR`; empty otherwise.
FROM scratch AS model

FROM ${CUDA_IMAGE}
# A CUDA build of torch; its wheel brings its own CUDA libraries. T4 is sm_75: keep an index whose
# wheels still list sm_75 in torch.cuda.get_arch_list().
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PDF2MD_MODEL_DIR=/opt/model

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv libgl1 libglib2.0-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv

RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY pdf2md ./pdf2md
COPY batch_jobs ./batch_jobs
# constraints.txt pins the CPU torch used in CI: everything but torch is pinned here.
RUN grep -v '^torch==' constraints.txt > /tmp/constraints-gpu.txt \
 && pip install -c /tmp/constraints-gpu.txt ".[dolphin,ocr]" \
 && rm /tmp/constraints-gpu.txt

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin pdf2md
COPY --from=model --chown=10001:10001 / /opt/model/
RUN mkdir -p /opt/model && chown 10001:10001 /opt/model

USER 10001
WORKDIR /home/pdf2md
# No ENTRYPOINT: the Batch job definition's command (["pdf2md", "worker"]) replaces CMD as a whole.
CMD ["pdf2md", "worker"]
