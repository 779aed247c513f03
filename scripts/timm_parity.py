"""Max abs output difference between resnetkit and timm for every shared architecture at output
stride 32/16/8, with timm's weights copied in and norm weights/statistics randomised (timm's init
zeroes the last norm of each block, which would hide a wiring difference).

    .venv/bin/python scripts/timm_parity.py
"""

import warnings

import torch

import resnetkit as rk

ARCHS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "resnet18d",
    "resnet34d",
    "resnet50c",
    "resnet50d",
    "resnet101d",
    "seresnet50",
    "seresnext50_32x4d",
]


def randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + 0.5 * torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(1.0 + torch.rand(n, generator=g))


def main():
    import timm

    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    print("| architecture | OS 32 | OS 16 | OS 8 |")
    print("|---|---|---|---|")
    for arch in ARCHS:
        cells = []
        for os_ in (32, 16, 8):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = timm.create_model(arch, output_stride=os_).eval()
            randomize(theirs)
            ours = rk.get_model(arch, output_stride=os_).eval()
            ours.load_state_dict(theirs.state_dict(), strict=True)
            with torch.no_grad():
                cells.append(f"{(theirs(x) - ours(x)).abs().max().item():.1e}")
        print(f"| {arch} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
