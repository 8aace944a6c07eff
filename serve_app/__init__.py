"""The prediction service: a Ray Serve application (FastAPI ingress) that scores a customer from
their online features and the registry's champion model. ``app.py`` is what Serve imports."""
