"""`mosa serve`: the HTTP API (FastAPI) and the browser page with a 3D viewer."""

from mosa.serve.app import add_arguments, create_app, run

__all__ = ["add_arguments", "create_app", "run"]
