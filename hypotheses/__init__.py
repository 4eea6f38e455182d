"""HyPerAlign inference: from a user's own texts to readable hypotheses about them.

The middle floor: may import `memory`, reaches a language model only through a callable it is
given. infer.py asks the model (prompts.py, parse.py check what comes back), merge.py decides what
changes, job.py runs a job end to end, schedule.py says when one is due, edits.py applies the user's
own changes, style.py measures the style card, skeleton.py and instructions.py see through disguised
text.
"""
