"""The book's "how to cite" is CITATION.cff rendered (clpips/book/citation.py, book/_ext/cff_citation.py): the BibTeX,
read back by pybtex, gives the file's fields; the APA is what APA 7's rules give by hand; the hand-written
book/references.bib agrees with the file; the page renders it (issue #26, item 6)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from pybtex.database import parse_file, parse_string

from clpips.book import citation

REPO = Path(__file__).resolve().parents[1]
CFF = yaml.safe_load((REPO / "CITATION.cff").read_text())
ALL_WORKS = [CFF["preferred-citation"], CFF, *CFF["references"]]


def unbraced(text: str) -> str:
    return text.replace("{", "").replace("}", "")


def names(entry) -> list[tuple[str, str]]:
    """pybtex's reading of an entry's authors as (family, given) pairs."""
    return [(" ".join(p.prelast_names + p.last_names), " ".join(p.first_names + p.middle_names))
            for p in entry.persons["author"]]


@pytest.mark.parametrize("work", ALL_WORKS, ids=lambda w: w["title"][:30])
def test_bibtex_read_back_by_pybtex_gives_the_cff_fields(work):
    entry = parse_string(citation.bibtex(work), "bibtex").entries[citation.cite_key(work)]
    want = [(a["family-names"], a["given-names"]) if "family-names" in a else (a["name"], "")
            for a in work["authors"]]
    assert [(unbraced(f), g) for f, g in names(entry)] == want
    assert unbraced(entry.fields["title"]) == work["title"]
    expected = {"year": work.get("year"), "volume": work.get("volume"), "number": work.get("issue"),
                "doi": work.get("doi"), "url": work.get("url"), "version": work.get("version"),
                "booktitle": work.get("collection-title"),
                "pages": f"{work['start']}--{work['end']}" if "end" in work else work.get("start")}
    for field, value in expected.items():
        assert entry.fields.get(field) == (None if value is None else str(value)), field
    arxiv = [i["value"] for i in work.get("identifiers", []) if i["value"].startswith("arXiv:")]
    if arxiv:      # a preprint: @misc with its arXiv number, as book/references.bib writes them
        assert entry.type == "misc" and "arXiv:" + entry.fields["eprint"] == arxiv[0]
    else:
        assert entry.type == {"article": "article", "conference-paper": "inproceedings", "software": "misc"}[
            work.get("type", "software")]
        assert entry.fields.get("journal") == work.get("journal")


def test_apa_is_what_the_rules_give_by_hand():
    by_title = {w["title"]: w for w in ALL_WORKS}
    # APA 7, journal article: every author up to 20 as "Family, I. I.", "&" before the last; journal and
    # volume in italics, the issue in brackets, the page range with an en dash, the DOI as an address
    assert citation.apa(by_title["Matching Categorical Object Representations in Inferior Temporal Cortex of Man "
                                 "and Monkey"]) == (
        "Kriegeskorte, N., Mur, M., Ruff, D. A., Kiani, R., Bodurka, J., Esteky, H., Tanaka, K., & Bandettini, "
        "P. A. (2008). Matching Categorical Object Representations in Inferior Temporal Cortex of Man and Monkey. "
        "*Neuron*, *60*(6), 1126–1141. <https://doi.org/10.1016/j.neuron.2008.10.043>")
    # paper in proceedings: "In *Proceedings*" and "(pp. a–b)"; two authors keep the comma before "&"
    assert citation.apa(by_title["Fine-Grained Visual Comparisons with Local Learning"]) == (
        "Yu, A., & Grauman, K. (2014). Fine-Grained Visual Comparisons with Local Learning. In *Proceedings of "
        "the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)* (pp. 192–199).")
    assert citation.apa(CFF["preferred-citation"]) == (
        "Trinh, K., Rothenberger, J., Seidenberger, S., Diochnos, D., & Maiti, A. (2026). CLPIPS: A Personalized "
        "Metric for AI-Generated Image Similarity. *arXiv*. <https://arxiv.org/abs/2604.01234>")
    # software: a group author ends with a full stop, no date is "(n.d.)", title in italics, version, kind
    assert citation.apa(CFF) == ("The CLPIPS compendium team. (n.d.). *CLPIPS: a reproducible research compendium* "
                                 "(Version 0.1.0) [Computer software].")


def test_apa_names_particles_hyphens_and_more_than_twenty_authors():
    people = [{"family-names": "Gogh", "name-particle": "van", "given-names": "Vincent Willem"},
              {"family-names": "Sartre", "given-names": "Jean-Paul"}, {"family-names": "Plato"}]
    assert citation.apa_authors(people) == "van Gogh, V. W., Sartre, J.-P., & Plato"
    assert citation.apa_authors(people[1:2]) == "Sartre, J.-P."
    many = [{"family-names": f"A{i}", "given-names": "B"} for i in range(1, 22)]
    # 21 authors or more: the first 19, an ellipsis, the last (no "&")
    assert citation.apa_authors(many) == ", ".join(f"A{i}, B." for i in range(1, 20)) + ", . . . A21, B."
    assert citation.apa_authors(many[:20]).endswith("A19, B., & A20, B.")
    entry = parse_string(citation.bibtex({"type": "article", "title": "Fish & Chips: 50% off", "year": 2020,
                                          "journal": "J_Food", "authors": people}), "bibtex").entries
    (key, fish), = entry.items()
    assert key == "gogh2020fish" and names(fish)[0] == ("van Gogh", "Vincent Willem")
    assert fish.fields["title"] == r"Fish \& Chips: 50\% off" and fish.fields["journal"] == r"J\_Food"


def test_references_bib_agrees_with_citation_cff():
    """A work of CITATION.cff that the book's bibliography (book/references.bib, written by hand) also holds is
    there under the key the page's BibTeX gives it, with the same authors, title, year and DOI."""
    bib = parse_file(str(REPO / "book" / "references.bib")).entries
    keys = [citation.cite_key(work) for work in [CFF["preferred-citation"], *CFF["references"]]]
    assert {"trinh2026clpips", "kriegeskorte2008matching", "mur2013human", "heim2015active",
            "yu2014finegrained"} <= set(keys) & set(bib)
    for work in [CFF["preferred-citation"], *CFF["references"]]:
        key = citation.cite_key(work)
        if key not in bib:
            continue
        ours = parse_string(citation.bibtex(work), "bibtex").entries[key]
        assert names(bib[key]) == names(ours), key
        for field in ("title", "year", "doi"):
            assert unbraced(bib[key].fields.get(field, "")) == unbraced(ours.fields.get(field, "")), (key, field)


def test_a_bad_citation_file_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "CITATION.cff"
    bad.write_text("title: x\nauthors: [\n")
    with pytest.raises(citation.CitationError, match=r"^.*CITATION\.cff: cannot read it: [^\n]*$"):
        citation.load(bad)
    bad.write_text(yaml.safe_dump({**CFF, "references": [{"title": "No one wrote this"}]}))
    with pytest.raises(citation.CitationError, match=r"CITATION\.cff: a work without a title or authors: "
                                                     r"\{'title': 'No one wrote this'\}$"):
        citation.load(bad)


def test_the_page_renders_the_citations_from_citation_cff(tmp_path):
    """The directive in a Sphinx build (MyST, as the book): the APA list and the BibTeX block of a page come from
    the CITATION.cff beside it, so a change to the file changes the page."""
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    src.mkdir()
    changed = {**CFF, "version": "9.8.7", "repository-code": "https://example.org/clpips.git"}
    (src / "CITATION.cff").write_text(yaml.safe_dump(changed, sort_keys=False))
    (src / "conf.py").write_text(f"import sys\nsys.path.insert(0, {str(REPO / 'book' / '_ext')!r})\n"
                                 "extensions = ['myst_parser', 'cff_citation']\n")
    (src / "index.md").write_text("# Cite\n\n```{cff-citation} apa\n:works: software references\n```\n\n"
                                  "```{cff-citation} bibtex\n:works: paper\n```\n\n```{cff-citation} clone\n```\n")
    app = Sphinx(str(src), str(src), str(tmp_path / "out"), str(tmp_path / "doctrees"), "text",
                 status=None, warning=sys.stderr, freshenv=True, warningiserror=True)
    app.build()
    page = (tmp_path / "out" / "index.txt").read_text()
    flat = " ".join(page.split())
    assert "(Version 9.8.7) [Computer software]. https://example.org/clpips.git" in flat  # the file beside the page
    assert "git clone https://example.org/clpips.git clpips && cd clpips" in page
    assert "(mur92: the 92 object images)" in flat                          # a reference's notes
    assert "@misc{trinh2026clpips," in page and "eprint        = {2604.01234}" in page
