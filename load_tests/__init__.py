"""Load tests and benchmarks (``python -m load_tests.<name>``); results go to ``load_tests/results/``."""
