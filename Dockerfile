# Build stage: the wheel, with the native core compiled (the toolchain stays in this stage).
FROM python:3.11-slim AS build
COPY --from=rust:1.95-slim-bookworm /usr/local/cargo /usr/local/cargo
COPY --from=rust:1.95-slim-bookworm /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH \
    PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY native ./native
COPY collector ./collector
COPY processors ./processors
COPY pricing_catalog ./pricing_catalog
COPY config ./config
# the packaged default config is a symlink to config/collector.yaml; the wheel carries the file itself
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -c "import glob, zipfile, sys; names = zipfile.ZipFile(glob.glob('/wheels/*.whl')[0]).namelist(); \
sys.exit(0 if any(n.startswith('collector/_native') for n in names) else 'the native core did not build')"

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GENAI_COLLECTOR_HOST=0.0.0.0

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && python -c "from collector import native; assert native.HOT_PATH == 'native', native.WHY_PYTHON" \
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
