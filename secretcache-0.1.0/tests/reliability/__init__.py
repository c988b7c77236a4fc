"""Faults, fuzzing of hostile inputs, the secret-leak canary, processes (fork, exit), load and soak."""
