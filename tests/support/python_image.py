"""An image with Python and boto3 for tasks, built offline from the files of the Python that runs
the tests (no Python image can be pulled here): the interpreter and the shared libraries it and
its extension modules load, the standard library, and boto3 with botocore's models of a few
services, on top of the offline busybox image. A task of this image runs the real boto3 inside its
own container, with only the environment the lab gave it."""
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tests.support.common import build_demo_image

# botocore's models the tasks' scripts use (each is a folder of botocore/data).
SERVICES = ("ecs", "ssm", "logs", "sts")
PACKAGES = ("boto3", "botocore", "jmespath", "dateutil", "urllib3", "s3transfer", "six.py")
STDLIB_LEFT_OUT = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
                   "pydoc_data", "__pycache__"}
DOCKERFILE = """FROM {base}
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONHOME=/usr/local PYTHONDONTWRITEBYTECODE=1 LD_LIBRARY_PATH=/usr/local/lib:/usr/lib/deps
"""


def _libraries(paths):
    """The shared libraries ``ldd`` resolves for these binaries (the dynamic loader included)."""
    found = set()
    for path in paths:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
                found.add(Path(parts[parts.index("=>") + 1]))
            elif parts and parts[0].startswith("/"):
                found.add(Path(parts[0]))
    return found


def _rootfs(root):
    """Lay the interpreter, its libraries, the standard library and the packages out under ``root``."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefix = root / "usr" / "local"
    lib = prefix / "lib" / version
    interpreter = Path(os.path.realpath(sys.executable))
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(interpreter, prefix / "bin" / "python3")
    shutil.copytree(stdlib, lib, ignore=lambda d, names: [n for n in names if Path(d) == stdlib and n in STDLIB_LEFT_OUT
                                                          or n == "__pycache__"])
    binaries = [interpreter, *sorted((stdlib / "lib-dynload").glob("*.so"))]
    for library in _libraries(binaries):
        target = root / "usr" / "lib" / "deps" / library.name
        if library.name.startswith("ld-linux"):
            target = root / str(library).lstrip("/")
        elif library.name.startswith("libpython"):
            target = prefix / "lib" / library.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(library), target)
    packages = Path(sysconfig.get_paths()["purelib"])
    site = lib / "site-packages"
    site.mkdir()
    for name in PACKAGES:
        source = packages / name
        if source.is_file():
            shutil.copy2(source, site / name)
            continue
        ignore = shutil.ignore_patterns("__pycache__")
        if name == "botocore":
            ignore = lambda d, names: [n for n in names if n == "__pycache__" or Path(d) == source / "data"
                                       and (source / "data" / n).is_dir() and n not in SERVICES]
        elif name == "boto3":
            ignore = shutil.ignore_patterns("__pycache__", "data")
        shutil.copytree(source, site / name, ignore=ignore)
    return root


@functools.cache
def build_python_image():
    """The image's tag, built once per session (and reused while the interpreter and boto3 are the same)."""
    import boto3
    import docker

    base = build_demo_image("fargate-lab/demo:latest")
    digest = hashlib.sha256(f"{sys.version}|{boto3.__version__}|{SERVICES}|{base}|{DOCKERFILE}".encode()).hexdigest()[:12]
    tag = f"fargate-lab/test-python:{digest}"
    client = docker.from_env(timeout=300)
    if client.images.list(name=tag):
        return tag
    with tempfile.TemporaryDirectory() as context:
        _rootfs(Path(context) / "rootfs")
        (Path(context) / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        try:
            client.images.build(path=context, tag=tag, rm=True)
        except docker.errors.BuildError as exc:
            pytest.fail(f"could not build the Python test image: {exc}")
    return tag
