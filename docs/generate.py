"""Regenerate every generated document: `python docs/generate.py` (or `make docs`); `--check` only reports.

The generated files, and what each is made from:
* README.md       - the fragments in docs/readme/, joined in README_ORDER.
* docs/models.md  - the preset registry: the page `resnets models --markdown` prints.
* docs/recipes.md - the shipped recipes (src/resnets/train/recipes/*.yaml) and the hand-written prose of
                    docs/recipes.in.md.
tests/test_docs.py renders each one in memory and fails, naming the file and this command, while the
committed copy differs.

How the recipe page carries what the sources disagree about (a design choice):
* Values are taken through the library (`load_recipe`), never by reading the YAML here, so the page shows
  what a training run uses.
* Each recipe file explains its values in YAML comments: a header comment, and comments beside, below or
  above a key. Those comments stay in the recipe files, next to the value they explain, and a small line
  reader (`read_recipe_comments`) collects them for the page. The Recipe dataclass gets no `notes` field:
  the comments are documentation, not something training reads, and a value and its comment change in one
  edit, on one line.
* Prose that compares the sources of a whole family of recipes (RSB A1-A3, torchvision V1/V2, ...) is
  hand-written in docs/recipes.in.md. Its `<!-- generated: ... -->` markers say where the generated tables
  and recipe sections go; every shipped recipe must be placed exactly once. Every backticked `field: value`
  in that prose is checked against the recipes of its `##` section (or their per-model variants), so a note
  cannot go on quoting a value the recipes no longer have.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
# Document this checkout, even when another copy of resnets is installed in the environment.
sys.path.insert(0, str(REPO / "src"))

from resnets.train.recipe import Recipe, field_names, list_recipes, load_recipe  # noqa: E402

COMMAND = "python docs/generate.py"
README_ORDER = ["00-intro.md", "models.md", "weights.md", "recipes.md", "train.md", "studies.md", "distill.md",
                "data.md", "inference.md", "90-layout.md"]
RECIPE_DIR = REPO / "src" / "resnets" / "train" / "recipes"
RECIPE_TEMPLATE = REPO / "docs" / "recipes.in.md"
# Fields each recipe section shows in prose (the description and source) or in its own table (size rules).
NOT_IN_TABLE = ("name", "source", "description", "size_rules")


class DocError(Exception):
    """A generated document cannot be built from its sources as they are."""


# --- README ---------------------------------------------------------------------------------------------------
def render_readme() -> str:
    parts = [(REPO / "docs" / "readme" / name).read_text(encoding="utf-8").strip() for name in README_ORDER]
    return "\n\n".join(parts) + "\n"


# --- model zoo ------------------------------------------------------------------------------------------------
def render_models() -> str:
    from resnets.cli.models import format_markdown, matching_models, model_record

    return format_markdown([model_record(name) for name in matching_models(None)]) + "\n"


# --- recipe comments --------------------------------------------------------------------------------------------
@dataclass
class RecipeComments:
    """The comments of one recipe file: its header, and the comments attached to each key."""

    header: list[str] = field(default_factory=list)
    keys: dict[str, list[str]] = field(default_factory=dict)
    """Top-level key, or "size_rules.<pattern>" for a per-model rule -> its comment lines in file order."""


_TOP_KEY = re.compile(r"^([A-Za-z_]\w*):(?:\s|$)")
_RULE_KEY = re.compile(r"^\s+([^\s#:][^:#]*?):(?:\s|$)")
_BLOCK_SCALAR = re.compile(r":\s+[|>][-+]?\d*$")


def _split_comment(line: str) -> tuple[str, str | None, int]:
    """(content, comment text or None, column of '#'). YAML's rule: a comment is a '#' after a blank, outside
    a quoted scalar; a quote opens a scalar only where a value starts (an apostrophe inside words does not)."""
    quote = None
    previous = ""                    # the last non-blank character outside quotes
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1               # an escaped character inside double quotes
            elif char == quote:
                quote = None
        elif char in "'\"" and previous in ("", ":", "[", "{", ",", "-"):
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            text = line[i + 1:].rstrip()  # keep indentation past "# ": it marks code in a header
            return line[:i].rstrip(), text[1:] if text.startswith(" ") else text, i
        if not quote and not char.isspace():
            previous = char
        i += 1
    return line.rstrip(), None, -1


def read_recipe_comments(text: str) -> RecipeComments:
    """Comments of a recipe file. A comment on a key's line belongs to that key, and so do comment lines
    below it aligned with that comment; other comment lines belong to the next key (or, before the first
    key, to the header). Raises DocError where the keys seen differ from what YAML reads."""
    result = RecipeComments()
    pending: list[str] = []
    current: str | None = None       # the key whose trailing comment may continue on the next lines
    current_column = -1
    top: str | None = None
    block_indent = -1                # inside a `key: >-` / `key: |` block scalar indented deeper than this
    for line in text.splitlines():
        if block_indent >= 0:
            if not line.strip() or len(line) - len(line.lstrip()) > block_indent:
                continue             # block scalar content: a '#' there is text, not a comment
            block_indent = -1
        content, comment, column = _split_comment(line)
        if not content.strip():
            if comment is None:      # a blank line ends a trailing comment's continuation
                current, current_column = None, -1
                continue
            if current is not None and column == current_column:
                result.keys[current].append(comment)
            elif top is None:
                result.header.append(comment)
            else:
                pending.append(comment)
            continue
        key = None
        if match := _TOP_KEY.match(content):
            top = key = match.group(1)
        elif top == "size_rules" and (match := _RULE_KEY.match(content)):
            key = f"size_rules.{match.group(1).strip()}"
        if key is None:              # a continuation line of a multi-line value
            current, current_column = None, -1
            continue
        result.keys[key] = pending + ([comment] if comment else [])
        pending = []
        if _BLOCK_SCALAR.search(content):
            block_indent = len(content) - len(content.lstrip())
        current, current_column = (key, column) if comment else (None, -1)
    data = yaml.safe_load(text) or {}
    seen = {k for k in result.keys if not k.startswith("size_rules.")}
    rules = {k.removeprefix("size_rules.") for k in result.keys if k.startswith("size_rules.")}
    expected_rules = set(data.get("size_rules") or {})
    if seen != set(data) or rules != expected_rules:
        differ = sorted(seen ^ set(data)) + [f"size_rules.{k}" for k in sorted(rules ^ expected_rules)]
        raise DocError(f"the comment reader and YAML disagree on the keys {differ}: "
                       "extend read_recipe_comments for this file's layout")
    return result


# --- recipe page --------------------------------------------------------------------------------------------------
def show(value: Any) -> str:
    """A value as the recipe tables print it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return f"({', '.join(show(v) for v in value)})" if value else "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={show(v)}" for k, v in value.items()) if value else "—"
    return str(value)


def _joined(notes: list[str]) -> str:
    return " ".join(note.strip() for note in notes)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _recipe_table(recipes: list[Recipe]) -> str:
    rows = ["| field | " + " | ".join(r.name for r in recipes) + " |",
            "|---|" + "---|" * len(recipes)]
    for name in field_names():
        if name not in NOT_IN_TABLE:
            rows.append(f"| `{name}` | " + " | ".join(_cell(show(getattr(r, name))) for r in recipes) + " |")
    return "\n".join(rows)


def _size_rule_tables(recipes: list[Recipe], comments: dict[str, RecipeComments]) -> str:
    blocks = []
    for recipe in recipes:
        if not recipe.size_rules:
            continue
        keys: list[str] = []
        for rule in recipe.size_rules.values():
            keys += [k for k in rule if k not in keys]
        lines = [f"`{recipe.name}` (`resnets train --recipe {recipe.name} --model NAME` applies the row of NAME):",
                 "",
                 "| model | " + " | ".join(f"`{k}`" for k in keys) + " | note in the recipe file |",
                 "|---|" + "---|" * (len(keys) + 1)]
        for pattern, rule in recipe.size_rules.items():
            note = _joined(comments[recipe.name].keys.get(f"size_rules.{pattern}", []))
            cells = [_cell(show(rule[k])) if k in rule else "" for k in keys]
            lines.append(f"| `{pattern}` | " + " | ".join(cells) + f" | {_cell(note)} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "No recipe has per-model rules."


def _prose(lines: list[str]) -> str:
    """Comment lines as Markdown: paragraphs, with lines indented in the comment kept as a code block."""
    out: list[str] = []
    code: list[str] = []
    for line in lines:
        if line.startswith("  "):
            code.append(line.strip())
            continue
        if code:
            out += ["", "```", *code, "```", ""]
            code = []
        out.append(line)
    if code:
        out += ["", "```", *code, "```"]
    return "\n".join(out).strip()


def _recipe_section(recipe: Recipe, comments: RecipeComments) -> str:
    lines = [f"### `{recipe.name}`", "", f"*{recipe.description}*", ""]
    if comments.header:
        lines += [_prose(comments.header), ""]
    lines += [f"**Source.** {recipe.source}", ""]
    noted = [(key, notes) for key, notes in comments.keys.items() if notes and not key.startswith("size_rules.")]
    if noted:
        lines += ["What the recipe file says about its values:", "",
                  "| field | value | note in the recipe file |", "|---|---|---|"]
        lines += [f"| `{key}` | {_cell(show(getattr(recipe, key)))} | {_cell(_joined(notes))} |"
                  for key, notes in noted]
    return "\n".join(lines).rstrip()


_MARKER = re.compile(r"^<!-- generated: ([\w-]+)(?: (\S+))? -->$")
_CLAIM = re.compile(r"`(\w+): ([^`]+)`")


def _same(claimed: Any, actual: Any) -> bool:
    if isinstance(claimed, str) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        try:
            claimed = float(claimed)  # YAML 1.1 reads "1e-4" as a string
        except ValueError:
            return False
    if isinstance(actual, (list, tuple)) and isinstance(claimed, (list, tuple)):
        return len(actual) == len(claimed) and all(_same(c, a) for c, a in zip(claimed, actual, strict=True))
    if isinstance(actual, bool) or isinstance(claimed, bool) or actual is None or claimed is None:
        return claimed is actual or claimed == actual
    if isinstance(actual, (int, float)) and isinstance(claimed, (int, float)):
        return math.isclose(claimed, actual, rel_tol=1e-9, abs_tol=1e-12)
    return claimed == actual


def check_claims(template: str, recipes: dict[str, Recipe]) -> None:
    """Every backticked `field: value` in a `##` section must hold for one of the recipes placed in that
    section (or a per-model variant of one); in a section that places none, for one of all recipes."""
    names = set(field_names())
    for section in re.split(r"^(?=## )", template, flags=re.M):
        placed = [m.group(2) for line in section.splitlines() if (m := _MARKER.match(line.strip()))
                  and m.group(1) == "recipe" and m.group(2) in recipes]
        candidates = [recipes[n] for n in placed] or list(recipes.values())
        candidates += [r.for_model(p) for r in list(candidates) for p in r.size_rules]
        title = section.splitlines()[0] if section.strip() else ""
        for key, text in _CLAIM.findall(section):
            if key not in names:
                continue
            claimed = yaml.safe_load(text)
            if not any(_same(claimed, dataclasses.asdict(r)[key]) for r in candidates):
                values = sorted({show(getattr(r, key)) for r in candidates})
                raise DocError(f"{RECIPE_TEMPLATE.name}, section {title!r}: the note says `{key}: {text}` but "
                               f"the recipes there have {', '.join(values)}")


def render_recipe_page(template: str, recipes: list[Recipe], comments: dict[str, RecipeComments]) -> str:
    """The template with each `<!-- generated: ... -->` marker line replaced by its generated part."""
    lines = template.splitlines(keepends=True)
    if lines and lines[0].startswith("<!--") and not _MARKER.match(lines[0].strip()):
        # the template's own explanation, up to the first line ending in "-->", is not part of the page
        end = next(i for i, line in enumerate(lines) if line.rstrip().endswith("-->"))
        template = "".join(lines[end + 1:]).lstrip("\n")
    # Columns of the side-by-side table follow the order in which the template places the recipes.
    order = [m.group(2) for line in template.splitlines() if (m := _MARKER.match(line.strip()))
             and m.group(1) == "recipe"]
    recipes = sorted(recipes, key=lambda r: order.index(r.name) if r.name in order else len(order))
    by_name = {r.name: r for r in recipes}
    check_claims(template, by_name)
    placed: list[str] = []
    out: list[str] = []
    for line in template.splitlines():
        match = _MARKER.match(line.strip())
        if not match:
            out.append(line)
            continue
        kind, arg = match.groups()
        if kind == "recipe-table" and arg is None:
            out.append(_recipe_table(recipes))
        elif kind == "size-rules" and arg is None:
            out.append(_size_rule_tables(recipes, comments))
        elif kind == "recipe" and arg in by_name:
            out.append(_recipe_section(by_name[arg], comments[arg]))
            placed.append(arg)
        else:
            raise DocError(f"{RECIPE_TEMPLATE.name}: unknown marker {line.strip()!r} (recipes: {', '.join(by_name)})")
    twice = sorted({n for n in placed if placed.count(n) > 1})
    missing = sorted(set(by_name) - set(placed))
    if twice or missing:
        raise DocError(f"{RECIPE_TEMPLATE.name}: every recipe needs one `<!-- generated: recipe NAME -->` line; "
                       f"missing: {missing or 'none'}, repeated: {twice or 'none'}")
    return "\n".join(out).rstrip() + "\n"


def render_recipes() -> str:
    names = list_recipes()
    recipes = [load_recipe(name) for name in names]
    comments = {name: read_recipe_comments((RECIPE_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
                for name in names}
    return render_recipe_page(RECIPE_TEMPLATE.read_text(encoding="utf-8"), recipes, comments)


# --- the command --------------------------------------------------------------------------------------------------
DOCUMENTS: dict[str, Callable[[], str]] = {
    "docs/recipes.md": render_recipes,
    "docs/models.md": render_models,
    "README.md": render_readme,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is stale")
    args = parser.parse_args(argv)
    from resnets.weights.io import atomic_write

    stale = []
    for path, render in DOCUMENTS.items():
        try:
            text = render()
        except DocError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        target = REPO / path
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            print(f"{path}: up to date")
            continue
        stale.append(path)
        if args.check:
            print(f"{path}: stale")
        else:
            atomic_write(target, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
            print(f"{path}: written")
    if args.check and stale:
        print(f"run `{COMMAND}` to regenerate {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
