# The Shipyard image used by compose.yaml for the API and every worker pool.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git bubblewrap \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/shipyard
COPY pyproject.toml README.md ./
# The import package `shipyard` and the rooms it links to (shipyard/api -> ../api, …).
COPY shipyard shipyard
COPY shared shared
COPY workers workers
COPY api api
COPY cli cli
COPY serve serve
COPY router router
RUN pip install --no-cache-dir .
RUN useradd --create-home shipyard && mkdir /data && chown shipyard /data
USER shipyard
ENV SHIPYARD_DATA_DIR=/data
EXPOSE 8000
CMD ["shipyard", "--help"]
