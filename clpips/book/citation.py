"""How to cite: ``CITATION.cff`` rendered as BibTeX and APA, for the book's page ``book/get_the_code.md``.

``CITATION.cff`` is the one source: the book renders it when it is built (``book/_ext/cff_citation.py``),
so no citation is copied by hand. The works to cite are its ``preferred-citation`` (the paper), the
file's root (this compendium, as software) and its ``references`` (the datasets' papers).

Decisions, stated once: titles are kept as the file writes them (no sentence case); in BibTeX a word
with a capital after its first letter (``CLPIPS``, ``AI-Generated``) is braced so styles keep its case,
and a group author (``name:``) is braced whole; APA lists every author up to 20, a work without a year
gets ``(n.d.)``, and a DOI is written as its ``https://doi.org/`` address.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

#: the order of a BibTeX entry's fields
BIB_FIELDS = ("author", "title", "journal", "booktitle", "howpublished", "year", "volume", "number", "pages", "doi",
              "eprint", "archiveprefix", "url", "version", "note")
_BIB_SPECIAL = re.compile(r"([&%#_$])")
_ARXIV = re.compile(r"^arXiv:(\S+)$", re.I)


class CitationError(ValueError):
    """``CITATION.cff`` cannot be read or lacks what a citation needs (the message names the file)."""


def load(path: str | Path) -> dict[str, Any]:
    """``CITATION.cff`` as a mapping (``yaml.safe_load``), checked for a title and authors."""
    try:
        cff = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise CitationError(f"{path}: cannot read it: {' '.join(str(err).split())}") from None
    if not isinstance(cff, dict):
        raise CitationError(f"{path}: not a CITATION.cff (a YAML mapping with a title and authors)")
    for work in [cff, *([cff["preferred-citation"]] if "preferred-citation" in cff else []),
                 *(cff.get("references") or [])]:
        if not (isinstance(work, dict) and work.get("title") and work.get("authors")):
            raise CitationError(f"{path}: a work without a title or authors: {' '.join(str(work).split())[:80]}")
    return cff


def works(cff: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """The works to cite by role: ``paper`` (preferred-citation), ``software`` (the file's root), ``references``."""
    return {"paper": [cff["preferred-citation"]] if cff.get("preferred-citation") else [],
            "software": [cff], "references": list(cff.get("references") or [])}


def _family(author: Mapping[str, Any]) -> str:
    """``family-names`` after its ``name-particle`` (``van Gogh``)."""
    return " ".join(str(author[k]) for k in ("name-particle", "family-names") if author.get(k))


def _initials(given: str) -> str:
    """``"Douglas A."`` -> ``"D. A."``, ``"Jean-Paul"`` -> ``"J.-P."``."""
    return " ".join("-".join(part[0] + "." for part in word.split("-") if part) for word in given.split())


def _arxiv_id(work: Mapping[str, Any]) -> str | None:
    for ident in work.get("identifiers") or []:
        match = _ARXIV.match(str(ident.get("value", "")))
        if match:
            return match.group(1)
    return None


def _pages(work: Mapping[str, Any], dash: str) -> str | None:
    if work.get("start") is None:
        return None
    return f"{work['start']}{dash}{work['end']}" if work.get("end") is not None else str(work["start"])


def cite_key(work: Mapping[str, Any]) -> str:
    """The first author's family name, the year and the title's first word, letters only: ``trinh2026clpips``,
    ``yu2014finegrained`` (the keys of ``book/references.bib``)."""
    first = work["authors"][0]
    who = re.sub(r"[^a-z]", "", str(first.get("family-names", "")).lower()) if "family-names" in first else ""
    word = re.sub(r"[^a-z]", "", str(work["title"]).split()[0].lower())
    return f"{who}{work.get('year', '')}{word}"


def _bib_text(value: Any) -> str:
    return _BIB_SPECIAL.sub(r"\\\1", str(value))


def _bib_title(title: str) -> str:
    return re.sub(r"\w[\w-]*", lambda w: "{" + w[0] + "}" if re.search(r"[A-Z]", w[0][1:]) else w[0],
                  _bib_text(title))


def _bib_author(author: Mapping[str, Any]) -> str:
    if "family-names" not in author:
        return "{" + _bib_text(author["name"]) + "}"
    given = author.get("given-names")
    return _bib_text(f"{_family(author)}, {given}" if given else _family(author))


def bibtex(work: Mapping[str, Any]) -> str:
    """One BibTeX entry: ``@article`` (``@misc`` for an arXiv preprint), ``@inproceedings``, ``@misc`` (software)."""
    arxiv = _arxiv_id(work)
    software = work.get("type", "software") == "software"
    kind = {"article": "article", "conference-paper": "inproceedings"}.get(work.get("type", "software"), "misc")
    if kind == "article" and arxiv and str(work.get("journal", "")).lower() == "arxiv":
        kind = "misc"
    text = {"journal": work.get("journal") if kind == "article" else None, "booktitle": work.get("collection-title"),
            "year": work.get("year"), "volume": work.get("volume"), "number": work.get("issue"),
            "pages": _pages(work, "--"), "howpublished": f"arXiv:{arxiv}" if arxiv and kind == "misc" else None,
            "eprint": arxiv, "archiveprefix": "arXiv" if arxiv else None, "version": work.get("version"),
            "note": f"Software, licence {work['license']}" if software and work.get("license") else None}
    fields = {"author": " and ".join(_bib_author(a) for a in work["authors"]), "title": _bib_title(work["title"]),
              **{k: _bib_text(v) for k, v in text.items() if v is not None},
              "doi": work.get("doi"), "url": work.get("url") or work.get("repository-code")}
    kept = {k: fields[k] for k in BIB_FIELDS if fields.get(k) is not None}
    width = max(map(len, kept))
    body = ",\n".join(f"  {k:<{width}} = {{{v}}}" for k, v in kept.items())
    return f"@{kind}{{{cite_key(work)},\n{body}\n}}"


def apa_authors(authors: list[Mapping[str, Any]]) -> str:
    """APA's author list: ``Family, I.``; ``&`` before the last; the first 19, ``...`` and the last beyond 20."""
    names = [f"{_family(a)}, {_initials(a['given-names'])}" if a.get("given-names")
             else _family(a) or str(a["name"]) for a in authors]
    if len(names) > 20:
        return ", ".join(names[:19]) + ", . . . " + names[-1]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + ", & " + names[-1]        # APA 7: the comma also with two


def apa(work: Mapping[str, Any]) -> str:
    """One APA 7 reference, in Markdown (``*italics*``, the DOI or URL as ``<address>``)."""
    who = apa_authors(work["authors"])
    head = f"{who if who.endswith('.') else who + '.'} ({work.get('year') or 'n.d.'})."
    kind = work.get("type", "software")
    link = f"https://doi.org/{work['doi']}" if work.get("doi") else work.get("url") or work.get("repository-code")
    if kind == "software":
        version = f" (Version {work['version']})" if work.get("version") else ""
        body = f"*{work['title']}*{version} [Computer software]."
    elif kind == "conference-paper":
        pages = _pages(work, "–")
        body = f"{work['title']}. In *{work['collection-title']}*{f' (pp. {pages})' if pages else ''}."
    else:
        volume = f", *{work['volume']}*" if work.get("volume") is not None else ""
        issue = f"({work['issue']})" if work.get("issue") is not None and volume else ""
        pages = _pages(work, "–")
        journal = f" *{work['journal']}*{volume}{issue}{f', {pages}' if pages else ''}." if work.get("journal") else ""
        body = f"{work['title']}.{journal}"
    return f"{head} {body}" + (f" <{link}>" if link else "")
