"""Text helpers shared by the human-readable outputs (console sink, report, explain)."""


def clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, the last one an ellipsis; width <= 0 keeps it whole."""
    return text if width <= 0 or len(text) <= width else text[: width - 1] + "…"
