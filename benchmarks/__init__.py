"""asv benchmarks of fastmlp, one module per area; see README.md, "Tracking performance"."""
