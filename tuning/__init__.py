"""Hyper-parameter search for the churn model on Ray Tune."""
