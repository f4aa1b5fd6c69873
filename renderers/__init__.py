"""Pure functions of (article, site config) → artifact, one per channel."""
