"""Pipeline entry points: one module per step, each runnable as a Ray job
(``ray job submit --working-dir . -- python -m ray_jobs.<step>``) and as ``churn <step>``."""
