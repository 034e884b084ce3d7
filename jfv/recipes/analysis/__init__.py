"""Recipes of dataset analysis: top_patches, embeddings, activations, filters, atlas."""
