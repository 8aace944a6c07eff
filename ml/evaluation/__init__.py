"""Holdout evaluation of a model (metrics, lift, campaign value, plots, report) and its explanations."""
