"""Evaluation: protocols (how a structure is evaluated), the result store, the runner."""
