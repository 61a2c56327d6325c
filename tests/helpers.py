"""Job functions that exist only for tests; worker subprocesses import them from here."""

import gc
import os
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
