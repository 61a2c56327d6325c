"""Settings of the blocking server: the project's settings with the blocking view as the only URL."""

from photosite.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.blocking"
