"""Golden baselines: a trace marked as the reference for its name, and how later runs compare."""
