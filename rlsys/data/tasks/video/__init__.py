"""Procedural video tasks: frame sequences of shapes with gold answers, worked solutions and five hints."""
