"""LoadedWeights: a state_dict with its model card - what every weights source resolves to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch

from ..card import ModelCard
from ..errors import DamagedModel
from .loading import classifier_weight, identify_architecture, stem_weight


@dataclass
class LoadedWeights:
    """A state_dict and its model card (arch, classes, preprocessing, build options); what the card
    does not say is read from the tensors (class count, input channels, architecture)."""

    state: Dict[str, torch.Tensor]
    card: ModelCard
    source: str = ""

    @classmethod
    def read(cls, state: Dict[str, torch.Tensor], meta: Mapping[str, Any], source: str) -> LoadedWeights:
        """From a file's tensors and decoded metadata; BadFile naming the field that does not parse."""
        fc, stem = classifier_weight(state), stem_weight(state)
        in_chans = int(stem.shape[1]) if stem is not None and stem.dim() == 4 else 3
        # The defaults' preprocessing is ImageNet's (RGB): a card for other channels must say its own.
        defaults = ModelCard(
            arch=None,
            num_classes=int(fc.shape[0]) if fc is not None else int(meta.get("num_classes") or 0),
            in_chans=in_chans if in_chans in (1, 3) else 3,
            source=source,
        )
        if in_chans not in (1, 3) and "in_chans" not in meta:
            meta = dict(meta, in_chans=in_chans)
        card = ModelCard.from_metadata(meta, where=source, defaults=defaults)
        if fc is not None and card.num_classes != int(fc.shape[0]):
            # Which output is which class is then unknown: refused, never guessed.
            raise DamagedModel(
                f"{source}: its card says {card.num_classes} classes but its classifier (fc) has {int(fc.shape[0])} "
                "outputs; the metadata does not belong to these weights: fix it or save the weights again"
            )
        return cls(state, card.but(source=source), source)

    @property
    def arch(self) -> Optional[str]:
        return self.card.arch or identify_architecture(self.state)

    @property
    def num_classes(self) -> int:
        return self.card.num_classes

    @property
    def classes(self) -> Optional[List[str]]:
        """Class names from the card; a bare 1000-way checkpoint is taken to be ImageNet-1k."""
        if self.card.classes:
            return list(self.card.classes)
        if self.num_classes == 1000:
            from .classes import imagenet_classes

            return imagenet_classes()
        return None

    @property
    def in_chans(self) -> int:
        return self.card.in_chans

    @property
    def model_options(self) -> Dict[str, Any]:
        return dict(self.card.model_options)
