"""The package version, in a module of its own so any stage can read it without importing the
package's API (`fastscan/__init__.py` imports `scan` for `scan_path`)."""

__version__ = "0.1.0"
