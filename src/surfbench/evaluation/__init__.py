"""Evaluation: protocols (how a structure is evaluated) and their registry (registry.py),
single points on labelled frames."""
