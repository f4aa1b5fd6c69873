"""Thin Prefect flows wiring sources → checks → renderers → outputs."""
