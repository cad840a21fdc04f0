"""`mosa serve`: the HTTP API (FastAPI) and the browser page with a 3D viewer."""

from mosa.serve.app import check_address, create_app

__all__ = ["check_address", "create_app"]
