"""The model layer: training on Ray Train, evaluation, the MLflow registry and promotion, batch
scoring and segments, retention campaigns, and drift. It reads features, never the simulator."""
