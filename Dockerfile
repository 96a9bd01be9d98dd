# One image for every Trainyard service; the command picks the service (see docker/entrypoint.sh):
#   docker run trainyard api | trainer | registry | evaluator | deployer | inference | rq-dashboard
#              | bucket-init | model-init | healthcheck <service> | <any command>
#
# Build arguments:
#   BASE_IMAGE     debian:bookworm-slim (official path) or trainyard/debian:bookworm (offline path, built by
#                  docker/build-base-image.sh with debootstrap + docker import). Python comes from Debian's
#                  apt in both cases, so both paths give the same runtime.
#   TORCH_VARIANT  cpu (default) or cuda. cpu installs a torch wheel found in docker/wheels/ (filled by
#                  docker/fetch-torch-wheel.sh) or else the PyTorch CPU index; cuda installs PyPI's default
#                  CUDA build (for the RTX 3090 box; the CUDA runtime comes in the wheels, the driver from
#                  the NVIDIA container toolkit).
#   (docker/prepare-build.sh fills docker/wheels/ and docker/certs/ (CAs of a TLS-intercepting proxy, used
#   by pip during the build only) from this machine.)
#   EXTRAS         optional dependency groups from pyproject.toml (default: embeddings = MiniLM for the
#                  evaluator's semantic similarity; empty for a smaller inference image).
# No model weights are baked in: mount a model directory at /models (compose: the `models` volume).

ARG BASE_IMAGE=debian:bookworm-slim

# ---- python: Debian's Python 3.11 and tini, shared by the build and runtime stages ---------------------
FROM ${BASE_IMAGE} AS python
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

# ---- deps: the virtual environment (cached until pyproject.toml, constraints.txt or the wheels change) --
FROM python AS deps
ARG TORCH_VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=embeddings
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_CERT=/tmp/build-ca.pem
# Extra CAs (a TLS-intercepting proxy) from docker/prepare-build.sh: trusted by pip in this stage only.
COPY docker/certs/ /tmp/certs/
RUN cat /etc/ssl/certs/ca-certificates.crt > /tmp/build-ca.pem \
 && find /tmp/certs -name '*.crt' -exec cat {} + >> /tmp/build-ca.pem \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY docker/wheels/ /tmp/wheels/
RUN set -eu; \
    case "$TORCH_VARIANT" in \
      cpu) if ls /tmp/wheels/torch-${TORCH_VERSION}+cpu-*.whl >/dev/null 2>&1; then \
             pip install --no-deps /tmp/wheels/torch-${TORCH_VERSION}+cpu-*.whl; \
           else \
             pip install --no-deps --index-url "$TORCH_CPU_INDEX" "torch==${TORCH_VERSION}+cpu"; \
           fi ;; \
      cuda) pip install "torch==${TORCH_VERSION}" ;; \
      *) echo "TORCH_VARIANT must be cpu or cuda, got '$TORCH_VARIANT'" >&2; exit 2 ;; \
    esac; \
    rm -rf /tmp/wheels
COPY pyproject.toml constraints.txt /tmp/build/
COPY docker/requirements.py /tmp/build/
# torch is already installed: the list below pins it, so pip keeps the variant installed above.
RUN python3 /tmp/build/requirements.py /tmp/build/pyproject.toml --extras "$EXTRAS" \
      --extra-package rq-dashboard --extra-package six > /tmp/build/requirements.txt \
 && pip install -r /tmp/build/requirements.txt -c /tmp/build/constraints.txt \
 && python3 -c "import torch; print('torch', torch.__version__)" \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} + \
 && rm -rf /tmp/build

# ---- runtime: venv + code, non-root -------------------------------------------------------------------
FROM python AS runtime
ARG UID=10001
LABEL org.trainyard.image="trainyard" org.opencontainers.image.title="Trainyard"
RUN groupadd --system --gid ${UID} trainyard \
 && useradd --system --uid ${UID} --gid trainyard --home-dir /data --shell /usr/sbin/nologin trainyard \
 && mkdir -p /data/state /data/inbox /data/control /data/checkpoints /data/adapters /models /app \
 && chown -R trainyard:trainyard /data /models
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    TRAINYARD_STATE_DIR=/data/state \
    TRAINYARD_INBOX_DIR=/data/inbox \
    TRAINYARD_CONTROL_DIR=/data/control \
    TRAINYARD_CHECKPOINTS_DIR=/data/checkpoints \
    TRAINYARD_INFERENCE_ADAPTERS_DIR=/data/adapters \
    TRAINYARD_UPLOADS_DIR=/data/state/uploads \
    TRAINYARD_HOST=0.0.0.0 \
    TRAINYARD_INFERENCE_HOST=0.0.0.0
RUN printf '#!/bin/sh\nexec python -m services.api.cli "$@"\n' > /opt/venv/bin/trainyard \
 && chmod 0755 /opt/venv/bin/trainyard
# The code layer last: editing the code rebuilds only this.
WORKDIR /app
COPY --chown=root:root shared/ /app/shared/
COPY --chown=root:root services/ /app/services/
COPY --chown=root:root docker/entrypoint.sh docker/healthcheck.py docker/bucket_init.py docker/model_init.py \
     /app/docker/
RUN chmod 0755 /app/docker/entrypoint.sh && python -m compileall -q /app/shared /app/services
USER trainyard
# A writable working directory: anything a service writes to a relative path lands under /data.
WORKDIR /data
EXPOSE 8000 8080 9181
ENTRYPOINT ["tini", "--", "/app/docker/entrypoint.sh"]
CMD ["api"]
