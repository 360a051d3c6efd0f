"""Analysis of stored results: predictions joined with DFT, error metrics; the softening study
(softening_study.py) computes what the store lacks through the runner first."""
