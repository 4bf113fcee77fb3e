"""Discord layer: thin cogs over the answering code."""
