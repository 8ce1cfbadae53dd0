"""The records layer: content-addressed stages and their markers (stages), a run's result.json and the results index
(results), and MLflow tracking (tracking)."""
