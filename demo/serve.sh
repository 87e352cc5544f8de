#!/bin/sh
# Serve a page naming this task on $PORT (80 by default); exit 0 on SIGTERM, as a well-behaved
# task does when ECS stops it.
PORT="${PORT:-80}"
# "/" is /www/cgi-bin/index.cgi (it names the task, uncached); other files under /www, such as a
# health check file a task's command writes, are served as they are.
mkdir -p /www
echo "demo: serving task ${FARGATE_LAB_TASK_ARN:-unknown} as $(hostname) on port ${PORT}"
httpd -f -v -p "${PORT}" -h /www &
pid=$!
trap 'echo "demo: got SIGTERM, stopping"; kill "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
