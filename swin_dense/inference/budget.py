"""The pixel budget of the requests the server holds at once: :class:`PixelBudget`.

Decoding and preprocessing an image takes memory in proportion to its pixels (docs/inference.md,
"Limits", has the measured bytes per pixel), so the server bounds the pixels of the images it is
working on, all requests together. A request reserves its images' pixels (read from their
headers, before anything is decoded) and gives them back when it is answered, failed or abandoned.
"""


class PixelBudget:
    """Pixels reserved by the requests in flight; at most ``limit`` in all (used from one event loop)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def reserve(self, pixels: int) -> bool:
        """Take ``pixels`` if they fit; False (and nothing taken) if not."""
        if self.used + pixels > self.limit:
            return False
        self.used += pixels
        return True

    def release(self, pixels: int) -> None:
        self.used -= pixels


__all__ = ['PixelBudget']
