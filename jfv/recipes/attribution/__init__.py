"""Recipes of attribution: attribute, gap_gmp, checkerboard, sensitivity."""
