"""gunicorn settings for `manage.py runsite` (`--config python:photosite.gunicorn`)."""

import signal

from jobs.supervisor import die_with_parent
from photosite.logs import gunicorn_logconfig

accesslog = "-"
logconfig_dict = gunicorn_logconfig()


def post_fork(server, worker) -> None:
    # A web worker goes with its arbiter, even when the arbiter is killed and cannot stop it.
    die_with_parent(signal.SIGKILL)
