"""Session-wide test settings: offline model hubs, small thread pools, no SLURM controller wait."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Every `snakemake` start loads snakemake-executor-plugin-slurm (2.8.0), which runs
# `scontrol show config` (its MinJobAge and status-command defaults) whenever SLURM's
# client is installed. With no reachable slurmctld, scontrol retries until SLURM's
# MessageTimeout (default 10 s) or the plugin's 10 s timeout: 10 s asleep per call,
# dozens of calls in this suite. Runs that do not use SLURM get a configuration whose
# controller refuses at once (MessageTimeout=1 bounds it if something does listen).
# The real-SLURM tests (tests/workflow/test_slurm.py, test_multinode.py) drop every
# SLURM_* variable and use their clusters' own configurations and timeouts
# (tests/workflow/conftest.py: real_slurm_env).
NO_CONTROLLER_CONF = """\
# Written by tests/conftest.py: no controller here, so SLURM clients fail at once.
ClusterName=cinefm-no-controller
SlurmctldHost=localhost
SlurmctldPort=1
MessageTimeout=1
"""


@pytest.fixture(scope="session", autouse=True)
def no_slurm_controller(tmp_path_factory):
    """SLURM_CONF of a cluster without a controller, for every process the tests start."""
    conf = tmp_path_factory.mktemp("no_slurm_controller") / "slurm.conf"
    conf.write_text(NO_CONTROLLER_CONF)
    patch = pytest.MonkeyPatch()
    patch.setenv("SLURM_CONF", str(conf))
    yield conf
    patch.undo()
