"""One module per group of routes; app.py includes each module's `router`."""
