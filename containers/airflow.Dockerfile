# syntax=docker/dockerfile:1
# The Airflow 3 image of the local stack (docker-compose.yaml): the official apache/airflow:3.3.2
# image plus the pdf2md package with its `airflow` extra (amazon provider with aiobotocore and
# common-messaging). Build from the repository root (the root .dockerignore keeps the context small):
#   docker build -f containers/airflow.Dockerfile -t pdf2md-airflow:local .
# The python3.11 variant matches the interpreter constraints.txt was frozen with.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# Extras of the pdf2md package, e.g. "airflow,local" to add the moto-based local Batch executor.
ARG PDF2MD_EXTRAS=airflow

WORKDIR /opt/pdf2md
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md ./
COPY --chown=airflow:0 pdf2md ./pdf2md
COPY --chown=airflow:0 batch_jobs ./batch_jobs

# constraints.txt pins apache-airflow==3.3.2 (the image's own version) and the providers, so pip keeps
# the image's Airflow and adds only the pinned providers and pdf2md's dependencies. The image's pip
# runs as the airflow user (user site), as the official image requires.
RUN pip install --no-cache-dir -c constraints.txt "/opt/pdf2md[${PDF2MD_EXTRAS}]" \
 && python -c "import airflow, pdf2md, airflow.providers.amazon, airflow.providers.common.messaging; print('airflow', airflow.__version__)"

WORKDIR /opt/airflow
