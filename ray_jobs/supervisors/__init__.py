"""Local process supervisors behind ``churn services`` and ``churn serve``: the project's own
redis-server and a Ray head for the prediction service."""
