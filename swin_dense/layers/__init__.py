"""Numerics of Swin Transformer V2: position bias, window masks, attention, blocks."""
