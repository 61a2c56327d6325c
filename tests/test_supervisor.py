"""The supervisor of `manage.py runsite` with real child processes (the whole stack is in test_runsite.py)."""

import signal
import subprocess
import sys
import time

import psutil
import pytest

from jobs.supervisor import Child, ChildKeepsDying, Supervisor
from tests.conftest import wait_for


def test_a_child_that_keeps_dying_stops_the_stack_saying_why():
    supervisor = Supervisor([Child("crasher", lambda: [sys.executable, "-c", "import sys; sys.exit(3)"])])
    supervisor.backoff_base = 0.01
    supervisor.start(supervisor.children[0])
    with pytest.raises(ChildKeepsDying, match=r"crasher keeps dying \(5 exits in 60 s, the last exited with code 3\)"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.05)
    assert supervisor.children[0].starts == 5


def test_a_child_restarted_after_it_dies_on_its_own():
    child = Child("sleeper", lambda: [sys.executable, "-c", "import time; time.sleep(600)"])
    supervisor = Supervisor([child])
    supervisor.backoff_base = 0.01
    supervisor.start(child)
    first = child.pid
    child.process.kill()
    wait_for(lambda: (supervisor.check() or True) and child.alive() and child.pid != first, timeout=10)
    assert child.starts == 2
    supervisor.stop()
    assert not child.alive()


def test_a_child_dies_with_its_parent():
    """The parent (a shell that started a sleeper with PR_SET_PDEATHSIG) is SIGKILLed: the sleeper follows it."""
    code = (
        "import signal, subprocess, sys, time; from jobs.supervisor import die_with_parent;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
        " preexec_fn=lambda: die_with_parent(signal.SIGKILL)); print(p.pid, flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_for(lambda: not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE,
             timeout=5)  # fmt: skip
