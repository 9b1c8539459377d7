# The Shipyard image used by compose.yaml for the API and every worker pool.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/shipyard
COPY pyproject.toml README.md ./
COPY shared shared
COPY workers workers
COPY api api
COPY cli cli
RUN pip install --no-cache-dir .
RUN useradd --create-home shipyard && mkdir /data && chown shipyard /data
USER shipyard
ENV SHIPYARD_DATA_DIR=/data
EXPOSE 8000
CMD ["shipyard", "--help"]
