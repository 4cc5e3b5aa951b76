"""Apache Airflow provider for asynchronous job APIs: submit, wait in the triggerer, wire typed results."""

__version__ = "0.1.0"
