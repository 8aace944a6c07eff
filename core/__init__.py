"""The shared core every layer builds on: settings, logging, storage and atomic outputs, the Ray
session, schema names and process helpers. It imports nothing else of the repository."""
