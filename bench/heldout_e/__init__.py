"""Held-out evaluation set E (issue 12): a labelled fleet written blind to the detector.

generate.py writes `kmemfleet import` bundles and a labels file from its own
generative laws; score.py imports them into a real server and scores
`kmemfleet leaks --json` against the labels. See PREREGISTRATION.md.
"""
