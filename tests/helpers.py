"""Job functions that exist only for tests; worker subprocesses import them from here."""

import gc
import os
import signal
import sys


def report_process() -> dict:
    """Where a job ran, and which process had loaded the face models it uses."""
    from recognition import engine

    return {
        "pid": os.getpid(),
        "models_loaded_by": engine.models_loaded_by,
        "face_recognition_imported": "face_recognition" in sys.modules,
        "frozen_objects": gc.get_freeze_count(),
    }


def report_connection() -> dict:
    """The work horse's pid, and whether a database connection was already open when the job began."""
    from django.db import connection

    connected = connection.connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"pid": os.getpid(), "connected_before": connected}


def fail_on_purpose() -> None:
    raise RuntimeError("failed on purpose")


def kill_own_process() -> None:
    """As a crash in native code or the kernel's out-of-memory killer would end the job."""
    os.kill(os.getpid(), signal.SIGKILL)


def leave_transaction_open() -> None:
    """A job with a bug: it enters a database transaction and never leaves it."""
    from django.db import transaction

    transaction.atomic().__enter__()
