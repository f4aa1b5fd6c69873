"""Where artifacts go: the release folder under --out, and reports."""
