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


# `make test` runs the suite on pytest-xdist workers with `--dist loadscope`, refined here:
# one worker takes a whole folder, so a folder's session fixtures (cohorts, trained models)
# are built once; tests/workflow's modules share none and top-level modules are their own
# scope. (pytest 9 ignores the `xdist_group` marks of `--dist loadgroup`: xdist 3.8 renames
# `item._nodeid`, which pytest 9's nodeid no longer reads.) The workflow modules that
# mostly wait (the real-SLURM runs, the local tiny DAG) are handed out first, so that the
# rest of the suite runs beside them; then tests/external, whose echo training is the longest CPU setup.
FIRST_SCOPES = ("tests/workflow/test_slurm.py", "tests/workflow/test_multinode.py",
                "tests/workflow/test_full_run.py", "tests/external")


def scope_of(nodeid: str) -> str:
    """The scheduling unit of a test id: its folder under tests/, or its module."""
    module = nodeid.split("::", 1)[0]
    parts = module.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] != "workflow":
        return "/".join(parts[:2])
    return module


@pytest.hookimpl(optionalhook=True)  # pytest without xdist: no such hook
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the collection order (below), not largest scope first

    class FolderScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return FolderScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # an xdist worker: the controller schedules in this order
        rank = {scope: i for i, scope in enumerate(FIRST_SCOPES)}
        items.sort(key=lambda item: rank.get(scope_of(item.nodeid), len(rank)))
