"""JupyterLab server configuration for the Galata tests (never use it elsewhere:
it disables authentication)."""

import os

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 - `c` is the config object

c.ServerApp.ip = "127.0.0.1"  # noqa: F821
c.ServerApp.port = int(os.environ.get("NBSCALE_UI_PORT", "8765"))  # noqa: F821
# the test machines run as root; only the loopback interface is served
c.ServerApp.allow_root = True  # noqa: F821
# keep the test output readable: warnings and errors only
c.ServerApp.log_level = "WARN"  # noqa: F821
c.LabApp.log_level = "WARN"  # noqa: F821
# no news / update checks from a test server
c.LabApp.news_url = None  # noqa: F821
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"  # noqa: F821
