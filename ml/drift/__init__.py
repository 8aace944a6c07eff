"""Drift between a reference and a current snapshot: the measures, the check, the HTML report."""
