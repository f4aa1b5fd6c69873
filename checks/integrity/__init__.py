"""Integrity of cited works (issue 14; docs/writing/verified.md): retractions, corrections
and expressions of concern, whether the citation names the work its DOI or PMID is registered
for, and whether a quoted passage is still in its source.

Pure: ``crossref.py`` and ``pubmed.py`` parse replies into ``record.py``'s records,
``verdict.py`` judges a record, ``titles.py`` compares the cited title with the registered one,
``apply.py`` folds it all into an article's report, ``quotes.py`` normalises and finds quotes.
I/O: ``client.py`` asks the registries (and reads quoted sources), ``cache.py`` keeps answers.
``settings.py`` is the ``[checks.integrity]`` table.
"""

from clinicpress.settings.integrity import IntegritySettings

__all__ = ["IntegritySettings"]
