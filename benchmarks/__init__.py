"""Benchmarks of airflow-jobwait (run as modules, e.g. ``python -m benchmarks.triggerer_scale``)."""
