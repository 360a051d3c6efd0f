"""Presentation of results: console tables, figures and the self-contained HTML report."""
