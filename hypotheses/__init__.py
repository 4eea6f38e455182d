"""HyPerAlign inference: from a user's own texts to readable hypotheses about them.

The middle floor: may import `memory`, reaches a language model only through a callable it is
given. Inference, the style card, merging and scheduling arrive with the hypotheses issue.
"""
