"""Labs as data: every folder under labs/ loads, each step has its five sections and a check,
and the step texts are rendered without raw HTML."""
import pytest

from classroom.labs import SECTIONS, LabError, all_labs, load_lab, render_markdown

LAB_YAML = """title: T
steps:
  - id: one
    title: One
    check: one
"""
STEP = "\n\n".join(f"## {name.title()}\ntext" for name in SECTIONS)


def make_lab(tmp_path, yaml=LAB_YAML, step=STEP, checks="def one(facts):\n    return True\n"):
    folder = tmp_path / "my-lab"
    folder.mkdir()
    (folder / "lab.yaml").write_text(yaml)
    (folder / "one.md").write_text(step)
    (folder / "checks.py").write_text(checks)
    return folder


def test_every_lab_folder_loads_with_all_sections_of_every_step():
    labs = all_labs()
    assert "image-to-url" in labs
    for lab in labs.values():
        assert lab.title and lab.steps
        for step in lab.steps:
            assert set(step.sections) == set(SECTIONS.values()), (lab.slug, step.id)
            assert all(str(html).strip() for html in step.sections.values()), (lab.slug, step.id)
            assert callable(step.check)


def test_it_loads_a_new_folder_as_a_lab(tmp_path):
    lab = load_lab(make_lab(tmp_path))
    assert lab.slug == "my-lab" and lab.step_ids == ["one"]
    assert lab.steps[0].check(None) is True


@pytest.mark.parametrize("yaml, step, checks, error", [
    (LAB_YAML, STEP.replace("## Hint", "## Hints"), "def one(f): pass", "unknown section"),
    (LAB_YAML, STEP.replace("## Hint\ntext", ""), "def one(f): pass", "missing section(s) ## hint"),
    (LAB_YAML, STEP, "def two(f): pass", "check 'one' is not a function"),
    ("title: T\n", STEP, "def one(f): pass", "needs a title and steps"),
    (LAB_YAML + "    quiz: {question: Q, choices: [a, b], answer: 2}\n", STEP, "def one(f): pass", "quiz"),
])
def test_it_refuses_a_malformed_lab_saying_what_is_wrong(tmp_path, yaml, step, checks, error):
    with pytest.raises(LabError, match=error.replace("(", r"\(").replace(")", r"\)")):
        load_lab(make_lab(tmp_path, yaml, step, checks))


def test_step_texts_show_raw_html_as_text_and_refuse_script_links():
    html = str(render_markdown('<script>alert(1)</script> [x](javascript:alert(1)) **bold**'))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html
    assert "<strong>bold</strong>" in html
