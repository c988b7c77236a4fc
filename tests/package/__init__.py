"""What users touch: injection, env files, Lambda, the CLI, the compat layer, the pytest plugin, examples, docs."""
