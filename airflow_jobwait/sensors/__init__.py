"""Sensors: wait for remote jobs."""

from airflow_jobwait.sensors.jobs import JobSensor

__all__ = ["JobSensor"]
