"""The vocabulary every layer shares, importing nothing else of mirbench: the item, the
backend registry, stage stats, progress, errors, words."""
