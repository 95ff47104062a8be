# The pytest-aigve evaluation service on a CUDA PyTorch base:
#   docker build -t pytest-aigve-serve .
#   docker run --gpus all -p 8750:8750 \
#     -v aigve-weights:/weights -v aigve-cache:/cache -v aigve-store:/store \
#     -v /etc/aigve/token:/etc/aigve/token:ro pytest-aigve-serve
# Weights (`python -m pytest_aigve weights fetch ...` into the /weights volume), the feature cache and the uploaded
# videos live on volumes, so a new image keeps them. Put TLS in front with a reverse proxy (see README).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    AIGVE_WEIGHTS_DIR=/weights \
    AIGVE_CACHE_DIR=/cache

WORKDIR /opt/pytest-aigve
COPY pyproject.toml README.md ./
COPY pytest_aigve ./pytest_aigve
# torch comes with the base image; the rest of the package, the service and the text-video models (transformers)
RUN pip install ".[serve,text]" && python -c "import pytest_aigve.remote.server"

RUN useradd --create-home --uid 1000 aigve && mkdir -p /weights /cache /store && \
    chown aigve:aigve /weights /cache /store
USER aigve
VOLUME ["/weights", "/cache", "/store"]
EXPOSE 8750

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8750/v1/healthz', timeout=4)"

CMD ["python", "-m", "pytest_aigve", "serve", "--host", "0.0.0.0", "--port", "8750", \
     "--token-file", "/etc/aigve/token", "--store-dir", "/store", "--device", "auto"]
