"""Distributed XGBoost training on Ray Train, cross-validation, and one training run end to end."""
