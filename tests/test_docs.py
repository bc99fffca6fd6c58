"""README and docs/: every relative link resolves inside the repository, and the repository
speaks of the project, not of how it was worked on (no "session" outside Ray's own folders)."""

import re

import pytest

from helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = ("README.md", "docs", "rllib_society", "experiments", "envs", "benchmarks", "examples", "configs",
           "run.py", "tune_search.py")


def relative_links(text: str) -> list[str]:
    """Targets (``path`` or ``path#anchor``) of markdown links and images that are not URLs or
    in-page anchors."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes of a markdown file's headings: lower case, punctuation dropped,
    spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_link_finder_finds_links_and_images():
    text = "see [a](docs/a.md#x), ![b](b.png), [c](https://x.org) and [d](#here)"
    assert relative_links(text) == ["docs/a.md#x", "b.png"]
    assert anchors("# A title\n## Chain: 100k env steps (its YAML's), 6 seeds\n```\n# not one\n```") == {
        "a-title", "chain-100k-env-steps-its-yamls-6-seeds"}


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_relative_link_resolves_inside_the_repository(doc):
    for target in relative_links(doc.read_text()):
        name, _, anchor = target.partition("#")
        path = (doc.parent / name).resolve()
        assert path.exists() and ROOT in path.parents, f"{doc.name}: {target}"
        assert not anchor or anchor in anchors(path.read_text()), f"{doc.name}: {target} (no such heading)"


def test_no_file_speaks_of_work_sessions():
    files = [p for name in SOURCES for p in ([ROOT / name] if (ROOT / name).is_file() else (ROOT / name).rglob("*"))
             if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".csv", ".json")]
    said = [f"{p.relative_to(ROOT)}:{n}" for p in files for n, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"session(?!_latest)", line, re.I)]
    assert not said, said
