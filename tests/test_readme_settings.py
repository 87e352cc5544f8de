"""The README's settings table names every environment variable the code reads, and only those:
a setting added to the code without a row (or a row left for a setting gone) fails here."""
import re

from tests.support.common import ROOT

# Where the lab's code reads its environment (the tests' own switches are in "Tests and benchmarks").
CODE = ["config", "orchestrator", "dashboard", "manage.py"]
# Read by the code but not settings a user sets: Django's plumbing and the test suite's database.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "FARGATE_LAB_TEST_DB"}
READS = re.compile(
    r"""(?:environ\.get|environ\.setdefault|getenv|_env_int|_env_float|_env_bool)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]""")


def settings_read_by_code():
    """Every environment variable a module of the lab reads."""
    names = set()
    for place in CODE:
        path = ROOT / place
        for source in ([path] if path.is_file() else path.rglob("*.py")):
            for found in READS.finditer(source.read_text()):
                names.add(found[1] or found[2])
    return names - NOT_SETTINGS


def settings_in_readme():
    """The variables named in the first column of the README's "Settings (environment)" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Settings (environment)", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_the_settings_table_names_every_setting_the_code_reads():
    missing = settings_read_by_code() - settings_in_readme()
    assert not missing, f"add a row to the README's settings table for: {', '.join(sorted(missing))}"


def test_the_settings_table_names_no_setting_the_code_does_not_read():
    stale = settings_in_readme() - settings_read_by_code()
    assert not stale, f"the README's settings table names settings no code reads: {', '.join(sorted(stale))}"


def test_the_scan_finds_the_settings_it_must():
    found = settings_read_by_code()
    assert {"HOST", "PORT", "FARGATE_LAB_PUBLISH_ADDRESS", "FARGATE_LAB_LOG", "DJANGO_ALLOWED_HOSTS"} <= found
