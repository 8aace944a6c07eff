"""Batch scoring on Ray Data: the scoring actors, risk segments and the scores output."""
