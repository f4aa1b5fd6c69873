"""Verification before publishing and during monitoring."""
