"""Regenerate src/resnetkit/weights/data/shape_signatures.json: the shape signature of every built-in
architecture (weights/loading.py's shape_signature), which `identify_architecture` compares a file
against without building models. Run after changing an architecture; tests/weights/test_signatures.py
fails until the table matches what the builders make.

    .venv/bin/python scripts/make_shape_signatures.py
"""

import json
from pathlib import Path

from resnetkit.models import list_models
from resnetkit.models.table import ARCHITECTURES
from resnetkit.weights.loading import SIGNATURES, builder_signature

TARGET = Path(__file__).resolve().parents[1] / "src" / "resnetkit" / "weights" / "data" / SIGNATURES

table = {name: builder_signature(name) for name in list_models() if name in ARCHITECTURES}
TARGET.write_text(json.dumps(table, indent=0, sort_keys=False) + "\n")
print(f"{len(table)} signatures -> {TARGET}")
