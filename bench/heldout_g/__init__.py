"""Held-out evaluation set G (issue 12): a third labelled fleet written blind to the detector.

generate.py writes `kmemfleet import` bundles and a labels file from its own
generative laws (not E's, not F's); score.py imports them into a real server and
scores `kmemfleet leaks --json` against the labels. See PREREGISTRATION.md.
"""
