"""Retention campaigns: choosing whom to contact with what under a budget, and checking a plan
against realised churn."""
