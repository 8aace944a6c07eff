"""Uplift: what each retention intervention changes in a customer's churn, learnt from past campaigns."""
