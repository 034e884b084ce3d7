"""Recipes of activation maximisation: channels, layer, sweep, invert, accentuate, interpolate."""
