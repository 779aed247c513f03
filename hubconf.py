"""torch.hub entry points: torch.hub.load("<owner>/resnetkit", "resnet50", weights="DEFAULT"),
or from a checkout: torch.hub.load("path/to/resnetkit", "resnet50", source="local").

Every registered architecture is an entry point, one line each, in the order of resnetkit's table
(a test checks that the list is complete); ``weights``/``progress`` and the model's options work as
in ``resnetkit.get_model`` (a catalog tag such as ``weights="a1_in1k"``, a file, a URL, a Hub id).
"""

import os
import sys

dependencies = ["torch", "torchvision", "safetensors", "tqdm", "filelock"]

# A hub checkout is not installed: make its src/ importable.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from resnetkit import get_model as _get_model  # noqa: E402


def _entry(name):
    def build(weights=None, progress=True, **options):
        return _get_model(name, weights=weights, progress=progress, **options)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"resnetkit {name}; weights=None | 'DEFAULT' | tag | file | URL | Hub id; other options go to the model."
    )
    return build


resnet18 = _entry("resnet18")
resnet34 = _entry("resnet34")
resnet50 = _entry("resnet50")
resnet101 = _entry("resnet101")
resnet152 = _entry("resnet152")
resnext50_32x4d = _entry("resnext50_32x4d")
resnext101_32x8d = _entry("resnext101_32x8d")
resnext101_64x4d = _entry("resnext101_64x4d")
wide_resnet50_2 = _entry("wide_resnet50_2")
wide_resnet101_2 = _entry("wide_resnet101_2")
resnet10t = _entry("resnet10t")
resnet14t = _entry("resnet14t")
resnet18d = _entry("resnet18d")
resnet26 = _entry("resnet26")
resnet26d = _entry("resnet26d")
resnet26t = _entry("resnet26t")
resnet34d = _entry("resnet34d")
resnet50c = _entry("resnet50c")
resnet50d = _entry("resnet50d")
resnet50s = _entry("resnet50s")
resnet50t = _entry("resnet50t")
resnet101c = _entry("resnet101c")
resnet101d = _entry("resnet101d")
resnet101s = _entry("resnet101s")
resnet152c = _entry("resnet152c")
resnet152d = _entry("resnet152d")
resnet152s = _entry("resnet152s")
resnet200 = _entry("resnet200")
resnet200d = _entry("resnet200d")
test_resnet = _entry("test_resnet")
resnext50d_32x4d = _entry("resnext50d_32x4d")
resnext101_32x4d = _entry("resnext101_32x4d")
resnext101_32x16d = _entry("resnext101_32x16d")
resnext101_32x32d = _entry("resnext101_32x32d")
resnet50_gn = _entry("resnet50_gn")
seresnet18 = _entry("seresnet18")
seresnet34 = _entry("seresnet34")
seresnet50 = _entry("seresnet50")
seresnet50t = _entry("seresnet50t")
seresnet101 = _entry("seresnet101")
seresnet152 = _entry("seresnet152")
seresnet152d = _entry("seresnet152d")
seresnet200d = _entry("seresnet200d")
seresnet269d = _entry("seresnet269d")
seresnext26d_32x4d = _entry("seresnext26d_32x4d")
seresnext26t_32x4d = _entry("seresnext26t_32x4d")
seresnext50_32x4d = _entry("seresnext50_32x4d")
seresnext101_32x4d = _entry("seresnext101_32x4d")
seresnext101_32x8d = _entry("seresnext101_32x8d")
seresnext101d_32x8d = _entry("seresnext101d_32x8d")
seresnext101_64x4d = _entry("seresnext101_64x4d")
senet154 = _entry("senet154")
ecaresnet26t = _entry("ecaresnet26t")
ecaresnet50d = _entry("ecaresnet50d")
ecaresnet50d_pruned = _entry("ecaresnet50d_pruned")
ecaresnet50t = _entry("ecaresnet50t")
ecaresnetlight = _entry("ecaresnetlight")
ecaresnet101d = _entry("ecaresnet101d")
ecaresnet101d_pruned = _entry("ecaresnet101d_pruned")
ecaresnet200d = _entry("ecaresnet200d")
ecaresnet269d = _entry("ecaresnet269d")
ecaresnext26t_32x4d = _entry("ecaresnext26t_32x4d")
ecaresnext50t_32x4d = _entry("ecaresnext50t_32x4d")
resnetblur18 = _entry("resnetblur18")
resnetblur50 = _entry("resnetblur50")
resnetblur50d = _entry("resnetblur50d")
resnetblur101d = _entry("resnetblur101d")
resnetaa34d = _entry("resnetaa34d")
resnetaa50 = _entry("resnetaa50")
resnetaa50d = _entry("resnetaa50d")
resnetaa101d = _entry("resnetaa101d")
seresnetaa50d = _entry("seresnetaa50d")
seresnextaa101d_32x8d = _entry("seresnextaa101d_32x8d")
seresnextaa201d_32x8d = _entry("seresnextaa201d_32x8d")
resnetrs50 = _entry("resnetrs50")
resnetrs101 = _entry("resnetrs101")
resnetrs152 = _entry("resnetrs152")
resnetrs200 = _entry("resnetrs200")
resnetrs270 = _entry("resnetrs270")
resnetrs350 = _entry("resnetrs350")
resnetrs420 = _entry("resnetrs420")
resnetv2_18 = _entry("resnetv2_18")
resnetv2_18d = _entry("resnetv2_18d")
resnetv2_34 = _entry("resnetv2_34")
resnetv2_34d = _entry("resnetv2_34d")
resnetv2_50 = _entry("resnetv2_50")
resnetv2_50d = _entry("resnetv2_50d")
resnetv2_50t = _entry("resnetv2_50t")
resnetv2_101 = _entry("resnetv2_101")
resnetv2_101d = _entry("resnetv2_101d")
resnetv2_152 = _entry("resnetv2_152")
resnetv2_152d = _entry("resnetv2_152d")
resnetv2_50d_gn = _entry("resnetv2_50d_gn")
resnetv2_50d_evos = _entry("resnetv2_50d_evos")
resnetv2_50d_frn = _entry("resnetv2_50d_frn")
resnetv2_50x1_bit = _entry("resnetv2_50x1_bit")
resnetv2_50x3_bit = _entry("resnetv2_50x3_bit")
resnetv2_101x1_bit = _entry("resnetv2_101x1_bit")
resnetv2_101x3_bit = _entry("resnetv2_101x3_bit")
resnetv2_152x2_bit = _entry("resnetv2_152x2_bit")
resnetv2_152x4_bit = _entry("resnetv2_152x4_bit")
resnet20 = _entry("resnet20")
resnet32 = _entry("resnet32")
resnet44 = _entry("resnet44")
resnet56 = _entry("resnet56")
resnet110 = _entry("resnet110")
