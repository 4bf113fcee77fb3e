"""Answering: the offline extractive answerer and its decision model."""
