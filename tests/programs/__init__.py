"""Programs the tests start in processes of their own (servers, apps, drills)."""
