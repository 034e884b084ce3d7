"""Recipes of activation maximisation: channels, layer, invert, accentuate, interpolate (sweep is the study of one experiment: jfv.recipes.evaluation.study)."""
