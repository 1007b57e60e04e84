"""echo-ray: Deep Tree Echo State Networks served at scale on Ray."""

__version__ = "0.1.0"
