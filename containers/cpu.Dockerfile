# syntax=docker/dockerfile:1.7
# The CPU worker: text layer plus RapidOCR, no torch. Build from the repository root:
#   docker build -f containers/cpu.Dockerfile -t pdf2md-cpu .

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# opencv-python (RapidOCR's dependency) needs libGL and glib at import.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY pdf2md ./pdf2md
COPY batch_jobs ./batch_jobs
RUN pip install -c constraints.txt ".[ocr]"

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin pdf2md
USER 10001
WORKDIR /home/pdf2md
CMD ["pdf2md", "worker"]
