FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GENAI_COLLECTOR_HOST=0.0.0.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY processors ./processors
COPY pricing_catalog ./pricing_catalog
COPY config ./config
# the packaged default config is a symlink to config/collector.yaml; the wheel carries the file itself
RUN pip install . && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /var/lib/genai-collector --create-home collector \
    && mkdir -p /etc/genai-collector
COPY config/collector.yaml /etc/genai-collector/config.yaml

USER collector
WORKDIR /var/lib/genai-collector
RUN mkdir -p /var/lib/genai-collector/data
VOLUME ["/var/lib/genai-collector/data"]
EXPOSE 4317 4318 8888 13133
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:13133/', timeout=2)"]
ENTRYPOINT ["genai-collector"]
CMD ["run", "--config", "/etc/genai-collector/config.yaml"]
