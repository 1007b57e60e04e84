"""The cognitive HTTP service: settings, session stores, the FastAPI ingress and the worker."""
