"""Offline image-synthesis metrics: feature networks, FD/KID, multi-scale SWD, PRDC and
memorisation."""
