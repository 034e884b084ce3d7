"""Recipes of training: train and train_study."""
