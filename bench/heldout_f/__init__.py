"""Held-out evaluation set F (issue 12): a second labelled fleet written blind to the detector.

generate.py writes `kmemfleet import` bundles and a labels file from its own
generative laws (not E's); score.py imports them into a real server and scores
`kmemfleet leaks --json` against the labels. See PREREGISTRATION.md.
"""
