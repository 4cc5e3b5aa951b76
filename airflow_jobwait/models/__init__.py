"""Pydantic models: the single source of truth for every payload airflow-jobwait sends or receives."""

from airflow_jobwait.models.base import WireModel
from airflow_jobwait.models.events import ResultsReference, WaitOutcome
from airflow_jobwait.models.inference import (
    InputResult,
    Job,
    JobInput,
    JobResults,
    ModelRef,
    SubmitJobRequest,
    Team,
    User,
    Voting,
)
from airflow_jobwait.models.status import JobStatus

__all__ = [
    "InputResult",
    "Job",
    "JobInput",
    "JobResults",
    "JobStatus",
    "ModelRef",
    "ResultsReference",
    "SubmitJobRequest",
    "Team",
    "User",
    "Voting",
    "WaitOutcome",
    "WireModel",
]
