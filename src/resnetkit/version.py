"""The package version, importable without torch (for `resnetkit --version`)."""

__version__ = "0.3.0"
