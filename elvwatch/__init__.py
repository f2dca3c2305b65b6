"""elvwatch: monitoring of the weak-current (ELV, 弱电) systems of residential communities.

Installed, every package of the project lives under this one name (``elvwatch.probes``,
``elvwatch.daemon``, …) while the repository keeps each as a top-level folder; the
mapping is ``[tool.setuptools.package-dir]`` in pyproject.toml.  In a checkout this
folder holds a link to each of those folders, so tools that read the source tree
(mypy, ``python -m elvwatch.cli`` from the checkout's root) see the installed names.
"""
