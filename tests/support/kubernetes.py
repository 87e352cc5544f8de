"""Checking a Kubernetes twin: it parses as YAML and validates against Kubernetes' own OpenAPI
schemas (kubernetes-validate ships them, so this works offline), strictly: a field Kubernetes
does not know fails."""
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.34"


def validate(manifest):
    """Fail with the schema's message unless ``manifest`` is a valid object of its kind."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    return manifest


def parse_and_validate(text):
    """The manifests of a YAML stream, each validated; returns them by kind (lists)."""
    by_kind = {}
    for manifest in yaml.safe_load_all(text):
        validate(manifest)
        by_kind.setdefault(manifest["kind"], []).append(manifest)
    return by_kind
