"""Airflow provider that waits for, and collects, task runs on other clouds."""

__version__ = "0.1.0"
