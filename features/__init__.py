"""Feature definitions, raw-source contracts, the synthetic source generator, and the stores."""
