"""Presentation of results: console tables (and, later, the HTML report)."""
