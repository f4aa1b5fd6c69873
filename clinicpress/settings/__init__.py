"""The models of the site config's nested tables: one module per table family.

They sit in the core layer, below every pipeline stage, because the site config
(``clinicpress/site.py``) holds them and every stage reads the site config
(docs/architecture.md, "Layers"). Validated once, when site.toml is loaded.
"""
