"""Explaining an architecture: the paper's Table 1 computed from the model, a per-block trace, params and
MACs (counted by torch's FLOP counter), renderings and diagrams."""
