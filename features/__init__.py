"""Features: the raw sources' contracts and validation, the feature definitions, the Spark ETL on
Ray (RayDP), the offline store (snapshots) and the online store (``features.online``)."""
