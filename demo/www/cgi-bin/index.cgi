#!/bin/sh
# The demo's page, answered by CGI rather than from a file: a file would carry Last-Modified
# and ETag, a browser reloading the load balancer's URL would get 304s from whichever task
# answered first, and the round robin would never show. no-store: every reload asks again.
printf 'Content-Type: text/plain\r\nCache-Control: no-store\r\n\r\n'
echo "task: ${FARGATE_LAB_TASK_ARN:-unknown}"
echo "hostname: $(hostname)"
