#!/bin/sh
# Serve a page naming this task on $PORT (80 by default); exit 0 on SIGTERM, as a well-behaved
# task does when ECS stops it.
PORT="${PORT:-80}"
mkdir -p /www
cat > /www/index.html <<PAGE
task: ${FARGATE_LAB_TASK_ARN:-unknown}
hostname: $(hostname)
PAGE
echo "demo: serving task ${FARGATE_LAB_TASK_ARN:-unknown} as $(hostname) on port ${PORT}"
httpd -f -v -p "${PORT}" -h /www &
pid=$!
trap 'echo "demo: got SIGTERM, stopping"; kill "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
