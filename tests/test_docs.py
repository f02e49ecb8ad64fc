"""Documents that cannot drift: every generated page equals what `python docs/generate.py` makes of today's
sources, hand-written notes cannot quote values the recipes no longer have, and every citation of
docs/reference.md names a section that exists."""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


@pytest.mark.parametrize("path", list(generate.DOCUMENTS))
def test_committed_document_is_what_the_generator_makes(path):
    try:
        expected, problem = generate.DOCUMENTS[path](), None
    except generate.DocError as exc:
        expected, problem = None, str(exc)
    if problem:
        pytest.fail(f"{path} cannot be generated from its sources: {problem}", pytrace=False)
    committed = (REPO / path).read_text(encoding="utf-8")
    if committed != expected:
        diff = list(difflib.unified_diff(committed.splitlines(), expected.splitlines(), f"{path} (committed)",
                                         f"{path} (generated)", lineterm="", n=1))
        pytest.fail(f"{path} is stale: run `{generate.COMMAND}` (or `make docs`) and commit the result.\n"
                    + "\n".join(diff[:40]), pytrace=False)


SAMPLE_RECIPE = """\
# A header line
#   an indented line: code
name: sample
description: "a \\"quoted\\" # is text"   # the real comment
model: it's plain        # after an apostrophe
lr: 0.1                   # trailing note
                          # continues the trailing note
# a block above epochs
epochs: 5
source: >-
  folded text
  # still text inside the block scalar
size_rules:
  # above the rule
  resnetrs50: {img_size: 160}
"""


def test_comment_reader_attaches_each_comment_to_its_key():
    comments = generate.read_recipe_comments(SAMPLE_RECIPE)
    assert comments.header == ["A header line", "  an indented line: code"]
    assert comments.keys == {
        "name": [], "description": ["the real comment"], "model": ["after an apostrophe"],
        "lr": ["trailing note", "continues the trailing note"],
        "epochs": ["a block above epochs"], "source": [], "size_rules": [],
        "size_rules.resnetrs50": ["above the rule"],
    }


def test_comment_reader_refuses_a_layout_it_does_not_understand():
    with pytest.raises(generate.DocError, match="comment reader"):
        generate.read_recipe_comments("name: x\n? complex key\n: value\n")


def _page(template):
    recipes = [generate.load_recipe(name) for name in ("rsb-a1", "torchvision-v2")]
    comments = {r.name: generate.RecipeComments() for r in recipes}
    return generate.render_recipe_page(template, recipes, comments)


def test_notes_quoting_a_value_are_checked_against_their_section():
    good = ("<!-- generated: recipe-table -->\n"
            "## RSB\n<!-- generated: recipe rsb-a1 -->\n`optimizer: lamb`, `warmup_start_factor: 1e-4`\n"
            "## torchvision\n<!-- generated: recipe torchvision-v2 -->\n`ema_every_steps: 32`\n")
    page = _page(good)
    assert "### `rsb-a1`" in page and "| `optimizer` | lamb | sgd |" in page
    stale = good.replace("`ema_every_steps: 32`", "`ema_decay: 0.998908`")
    with pytest.raises(generate.DocError, match=r"`ema_decay: 0.998908` but the recipes there have 0.99998"):
        _page(stale)
    # a value of a recipe in another section does not make a note true
    misplaced = good.replace("`optimizer: lamb`", "`optimizer: sgd`")
    with pytest.raises(generate.DocError, match="optimizer: sgd"):
        _page(misplaced)


def test_the_template_must_place_every_recipe_once():
    with pytest.raises(generate.DocError, match=r"missing: \['torchvision-v2'\]"):
        _page("<!-- generated: recipe rsb-a1 -->\n")
    with pytest.raises(generate.DocError, match="unknown marker"):
        _page("<!-- generated: recipe rsb-a1 -->\n<!-- generated: recipe torchvision-v2 -->\n"
              "<!-- generated: recipe rsb-a9 -->\n")


def test_recipe_page_has_a_row_for_every_recipe_field():
    page = generate.render_recipes()
    for name in generate.field_names():
        if name not in generate.NOT_IN_TABLE:
            assert f"\n| `{name}` |" in page, name
    assert "| `ema_rule` | " in page and "torchvision |" in page


def test_check_mode_reports_a_stale_document_and_writes_nothing(monkeypatch, capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    monkeypatch.setattr(generate, "DOCUMENTS", {"README.md": lambda: readme + "changed\n"})
    assert generate.main(["--check"]) == 1
    out, err = capsys.readouterr()
    assert "README.md: stale" in out and generate.COMMAND in err
    assert (REPO / "README.md").read_text(encoding="utf-8") == readme


# --- citations of docs/reference.md ------------------------------------------------------------------------------
REFERENCE = REPO / "docs" / "reference.md"
SECTION_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.M)
CITATION = re.compile(r"reference\.md(?:\]\([^)]*\))?\s*§\s*(\d+(?:\.\d+)*)(?:\s*[–-]\s*(\d+(?:\.\d+)*))?")
# Built from parts so this file does not match itself: the shared notes the project must not depend on.
OUTSIDE_NOTES = re.compile("REFER" + r"ENCE(\.md)?\s*§|REFER" + r"ENCE\.md")


def _project_text_files():
    for folder in ("src", "tests", "benchmarks", "docs"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".md", ".yaml") and path.is_file():
                yield path
    yield REPO / "README.md"


def test_every_reference_citation_names_an_existing_section():
    sections = set(SECTION_HEADING.findall(REFERENCE.read_text(encoding="utf-8")))
    assert {"1.8", "2.1", "2.5", "3.2", "4"} <= sections
    dangling, cited = [], 0
    for path in _project_text_files():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            for section in filter(None, match.groups()):
                cited += 1
                if section not in sections:
                    dangling.append(f"{path.relative_to(REPO)}: §{section}")
    assert cited >= 10 and dangling == []


def test_no_file_cites_notes_outside_the_project():
    offenders = [str(path.relative_to(REPO)) for path in _project_text_files()
                 if OUTSIDE_NOTES.search(path.read_text(encoding="utf-8"))]
    assert offenders == [], "cite docs/reference.md §N instead"
