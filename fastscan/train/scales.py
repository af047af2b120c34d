"""How big the generated benign objects are at each corpus scale: width multipliers shared by
the library writers (benign.py) and our own-class writers (benign_custom.py)."""

SCALES = {"small": 1, "medium": 4, "large": 32}
