#!/usr/bin/env bash
# Build the demo image (fargate-lab/demo:latest by default). Uses busybox:1.36 when it is
# present or can be pulled; otherwise imports a busybox base from the host's busybox-static
# (Debian: apt-get install busybox-static), so the build works with no registry at all.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="${1:-${FARGATE_LAB_DEMO_IMAGE:-fargate-lab/demo:latest}}"
base="busybox:1.36"
if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
    base="fargate-lab/busybox:offline"
    if ! docker image inspect "$base" >/dev/null 2>&1; then
        busybox="$(command -v busybox || true)"
        if [ -z "$busybox" ] || ! "$busybox" --list >/dev/null 2>&1; then
            echo "demo/build.sh: no busybox base image and no static busybox to make one; install busybox-static" >&2
            exit 1
        fi
        rootfs="$(mktemp -d)"
        trap 'rm -rf "$rootfs"' EXIT
        mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/www"
        cp "$busybox" "$rootfs/bin/busybox"
        for applet in $("$rootfs/bin/busybox" --list); do
            [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
        done
        echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
        echo 'root:x:0:' > "$rootfs/etc/group"
        tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' - "$base" >/dev/null
    fi
fi
docker build -q --build-arg "BASE=$base" -t "$image" "$here" >/dev/null
echo "$image"
