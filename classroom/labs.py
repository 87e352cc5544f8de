"""Labs as data: one folder per lab under ``labs/`` (as a Killercoda scenario is one folder).

A folder holds ``lab.yaml`` (title, summary, order, the steps in order: id, title, check, optional
quiz), a Markdown file per step (``<step id>.md``) and ``checks.py`` with one function per
check named in ``lab.yaml``. A step's Markdown opens with what the step is about, then five
sections, each a level-2 heading: ``## The CLI way``, ``## The dashboard way``, ``## Hint``,
``## Solution`` and ``## Kubernetes``. Adding a lab is adding a folder; nothing else changes.
"""
import importlib.util
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from django.conf import settings
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

SECTIONS = {
    "the cli way": "cli",
    "the dashboard way": "dashboard",
    "hint": "hint",
    "solution": "solution",
    "kubernetes": "kubernetes",
}
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
STEP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

# CommonMark with raw HTML off: a lab's text is escaped, never injected (links are checked
# by markdown-it's own validator, which refuses javascript: and the like).
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


class LabError(Exception):
    """A lab folder that does not hold a well-formed lab (said with the folder and the step)."""


def render_markdown(text):
    """Markdown to safe HTML (raw HTML in the text is shown as text)."""
    return mark_safe(_markdown.render(text))


@dataclass(frozen=True)
class Quiz:
    """A question with choices; ``answer`` is the index of the right one."""

    question: str
    choices: tuple
    answer: int


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    check: object  # the function ``check(facts) -> Verdict | bool``
    check_name: str
    intro: str
    sections: dict  # section key -> rendered HTML
    quiz: Quiz | None = None

    @property
    def intro_html(self):
        return render_markdown(self.intro)

    def section(self, key):
        return self.sections[key]


@dataclass(frozen=True)
class Lab:
    slug: str
    title: str
    summary: str
    steps: tuple
    folder: Path = field(compare=False)
    order: int = 0

    def step(self, step_id):
        return next((step for step in self.steps if step.id == step_id), None)

    @property
    def step_ids(self):
        return [step.id for step in self.steps]

    def next_step(self, ticked):
        """The first step not yet ticked (None when every step is)."""
        return next((step for step in self.steps if step.id not in ticked), None)


def labs_dir():
    """The folder holding the labs: ``labs/`` at the top of the repository."""
    return Path(settings.BASE_DIR) / "labs"


def split_sections(text, where):
    """A step's Markdown as (intro, {section key: Markdown}); every section must be there once."""
    intro, sections, current = [], {}, None
    for line in text.splitlines():
        heading = re.match(r"^##\s+(.*?)\s*$", line)
        if heading:
            key = SECTIONS.get(heading.group(1).lower())
            if key is None:
                raise LabError(f"{where}: unknown section '## {heading.group(1)}' (use {', '.join(SECTIONS)})")
            if key in sections:
                raise LabError(f"{where}: section '## {heading.group(1)}' twice")
            current = sections[key] = []
            continue
        (intro if current is None else current).append(line)
    missing = [name for name, key in SECTIONS.items() if key not in sections]
    if missing:
        raise LabError(f"{where}: missing section(s) {', '.join('## ' + m for m in missing)}")
    return "\n".join(intro).strip(), {key: "\n".join(lines).strip() for key, lines in sections.items()}


def _load_checks(folder, slug):
    """The lab's ``checks.py`` as a module (loaded from its file: a lab is a folder, not a package)."""
    path = folder / "checks.py"
    if not path.exists():
        raise LabError(f"{folder.name}: no checks.py")
    spec = importlib.util.spec_from_file_location(f"fargate_lab_checks.{slug.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quiz(raw, where):
    if raw is None:
        return None
    try:
        quiz = Quiz(str(raw["question"]), tuple(str(c) for c in raw["choices"]), int(raw["answer"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise LabError(f"{where}: a quiz needs question, choices and answer ({exc})") from exc
    if not 0 <= quiz.answer < len(quiz.choices) or len(quiz.choices) < 2:
        raise LabError(f"{where}: the quiz's answer must be the index of one of at least two choices")
    return quiz


def load_lab(folder):
    """Read one lab folder; LabError says what is wrong with it."""
    folder = Path(folder)
    slug = folder.name
    if not SLUG.match(slug):
        raise LabError(f"{slug}: a lab folder's name is lowercase letters, digits and dashes")
    try:
        meta = yaml.safe_load((folder / "lab.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"{slug}: lab.yaml cannot be read: {exc}") from exc
    if not isinstance(meta, dict) or not meta.get("title") or not meta.get("steps"):
        raise LabError(f"{slug}: lab.yaml needs a title and steps")
    checks = _load_checks(folder, slug)
    steps, seen = [], set()
    for raw in meta["steps"]:
        step_id = str(raw.get("id", ""))
        where = f"{slug}/{step_id or '?'}"
        if not STEP_ID.match(step_id) or step_id in seen:
            raise LabError(f"{where}: each step needs an id of its own (lowercase letters, digits, dashes)")
        seen.add(step_id)
        check_name = str(raw.get("check", ""))
        check = getattr(checks, check_name, None)
        if not check_name or not callable(check):
            raise LabError(f"{where}: check '{check_name}' is not a function of checks.py")
        try:
            text = (folder / f"{step_id}.md").read_text()
        except OSError as exc:
            raise LabError(f"{where}: no {step_id}.md") from exc
        intro, sections = split_sections(text, where)
        steps.append(Step(step_id, str(raw.get("title") or step_id), check, check_name, intro,
                          {key: render_markdown(body) for key, body in sections.items()},
                          _quiz(raw.get("quiz"), where)))
    return Lab(slug, str(meta["title"]), str(meta.get("summary", "")), tuple(steps), folder, int(meta.get("order", 0)))


@lru_cache(maxsize=1)
def _all_labs(root):
    folders = [p for p in Path(root).iterdir() if (p / "lab.yaml").exists()] if Path(root).is_dir() else []
    labs = sorted(map(load_lab, folders), key=lambda lab: (lab.order, lab.slug))
    return {lab.slug: lab for lab in labs}


def all_labs():
    """Every lab, by slug, in the order their ``lab.yaml`` gives (``order:``)."""
    return _all_labs(str(labs_dir()))


def get_lab(slug):
    """The lab ``slug``, or None."""
    return all_labs().get(slug)
