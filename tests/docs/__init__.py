"""The documentation and examples run as written."""
