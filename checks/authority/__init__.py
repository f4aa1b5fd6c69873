"""Verified at the authority (issue 25; docs/writing/verified.md): each DHCS license
against the state's list of licensed and certified facilities, each reviewer's NPI against the
NPPES NPI Registry.

Pure: ``license.py`` and ``npi.py`` build requests, read answers and judge them;
``transitions.py`` says what changed since the last monitor run. I/O: the lookups in those two
modules go through ``http.py``'s ``JsonGet`` (one vetted, pinned client), and ``cache.py``
keeps answers for check and publish. The settings are ``clinicpress/settings/registries.py``.
"""
