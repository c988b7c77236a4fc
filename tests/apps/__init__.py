"""Small applications the process tests run in subprocesses (gunicorn, multiprocessing)."""
