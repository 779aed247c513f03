"""The HTTP inference service (`resnetkit serve`): a FastAPI app with dynamic batching."""

from .app import ServeConfig, Service, create_app, load_service

__all__ = ["ServeConfig", "Service", "create_app", "load_service"]
