"""The HTTP inference service (`resnetkit serve`): a FastAPI app with dynamic batching.

config.py (ServeConfig) - service.py (the model served, the Service object) - routes.py (the
endpoints) - uploads.py (reading bodies and images) - batcher.py - metrics.py - protocol.py (the
HTTP connection handler: request-head deadline) - app.py (the app and its factories).

Lazy (resnetkit/lazy.py): its names import FastAPI and torch when first looked up.
"""

from typing import TYPE_CHECKING

from ..lazy import faces

__getattr__, __dir__ = faces(
    __name__,
    {
        "app": ["app_builder", "create_app"],
        "config": ["ServeConfig"],
        "service": ["ServedModel", "Service", "load_service"],
    },
)

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .app import app_builder, create_app
    from .config import ServeConfig
    from .service import ServedModel, Service, load_service

__all__ = ["ServeConfig", "ServedModel", "Service", "app_builder", "create_app", "load_service"]
