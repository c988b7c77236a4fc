"""The command line, the official library's API (compat), the demo and its database starter."""
