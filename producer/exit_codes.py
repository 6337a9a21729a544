"""The exit codes of the ``celery-agents`` command line, one table for every command.

``status``, ``submit --wait``, ``watch`` and ``cancel`` report a job the same way, so a
script can branch on the code without parsing the output (README, "Exit codes").
"""

from __future__ import annotations

from producer.contracts import JobStatus

EXIT_OK = 0  # the job succeeded, or the command did its work
EXIT_FAILED = 1  # the job failed
EXIT_USAGE = 2  # bad usage or invalid input
EXIT_NOT_ENDED = 3  # the job has not ended: still queued or running, or waiting timed out
EXIT_NO_REDIS = 4  # Redis could not be reached at the URL given
EXIT_CANCELLED = 5  # the job was cancelled
EXIT_UNKNOWN_JOB = 6  # no such job (never submitted, or expired)
EXIT_ALREADY_ENDED = 7  # cancel: the job had ended before, nothing was cancelled
EXIT_SESSION_BUSY = 8  # history --import: a job of the session is queued or running
EXIT_BROKEN_PIPE = 141  # whoever read our output closed it (as a SIGPIPE death would be)

EXIT_TIMEOUT = EXIT_NOT_ENDED  # the older name: waiting timed out


def exit_code_for(status: JobStatus) -> int:
    """The exit code that reports a job in ``status``."""
    if status == JobStatus.SUCCEEDED:
        return EXIT_OK
    if status == JobStatus.FAILED:
        return EXIT_FAILED
    if status == JobStatus.CANCELLED:
        return EXIT_CANCELLED
    return EXIT_NOT_ENDED
