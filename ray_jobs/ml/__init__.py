"""Model code shared by the training, tuning, scoring and serving steps."""
