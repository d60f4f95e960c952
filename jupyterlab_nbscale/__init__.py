"""jupyterlab-nbscale: the JupyterLab extension and kernelspec of nbscale.

The pip package ships the prebuilt labextension and the ``nbscale``
kernelspec; the kernel itself is the Node program of the npm package
``nbscale`` (see :mod:`jupyterlab_nbscale.kernel_launcher`).
"""

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - running from a source tree
    # Fallback when using the package in dev mode without installing
    # in editable mode with pip. It is highly recommended to install
    # the package from a stable release or in editable mode:
    # https://pip.pypa.io/en/stable/topics/local-project-installs/#editable-installs
    import warnings

    warnings.warn("Importing 'jupyterlab_nbscale' outside a proper installation.")
    __version__ = "dev"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyterlab-nbscale"}]
