"""The web console (`kmemfleet server --http`): pages, their JSON API, the login form.

`console.py` is the aiohttp application (routes, authentication, errors),
`api.py` the JSON API over the query layer, `series.py` the curves and tables the
pages draw beside the rankings; `static/` holds the pages' HTML, CSS, JavaScript
and the vendored uPlot (docs/web.md says why that library and how it is pinned).
"""
