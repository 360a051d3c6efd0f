"""Analysis of stored results: predictions joined with DFT, error metrics."""
