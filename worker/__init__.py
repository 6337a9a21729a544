"""The Celery worker side: start it with ``celery -A worker worker -Q agents,tools``."""

from worker.app import app

__all__ = ["app"]
