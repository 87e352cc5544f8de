# The lab's image for compose.yaml: Debian with what `make run` expects of the host (the Docker
# CLI and busybox-static for the demo image, the registry binary for ECR, iptables for the host
# firewall); the Docker engine is the host's, reached through its socket.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv docker.io busybox-static \
       docker-registry iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /lab
COPY pyproject.toml manage.py ./
COPY config config
COPY orchestrator orchestrator
COPY dashboard dashboard
COPY classroom classroom
COPY labs labs
COPY templates templates
COPY static static
COPY demo demo
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir .
ENV FARGATE_LAB_VAR=/var/lib/fargate-lab
CMD ["/venv/bin/python", "manage.py", "lab"]
