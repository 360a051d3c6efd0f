"""Backends, one module per family of potentials. Each imports its package lazily."""
