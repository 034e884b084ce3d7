"""Recipes of evaluation: the LPIPS regulariser study and the trust scores."""
