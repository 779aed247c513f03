"""The HTTP inference service (`resnetkit serve`): a FastAPI app with dynamic batching.

config.py (ServeConfig) - service.py (the model served, the Service object) - routes.py (the
endpoints) - uploads.py (reading bodies and images) - batcher.py - metrics.py - protocol.py (the
HTTP connection handler: request-head deadline) - app.py (the app and its factories)."""

from .app import app_builder, create_app
from .config import ServeConfig
from .service import ServedModel, Service, load_service

__all__ = ["ServeConfig", "ServedModel", "Service", "app_builder", "create_app", "load_service"]
