"""A fake Alibaba Cloud ECI (OpenAPI 2018-08-08) that the official SDK talks to unchanged.

Entry points: `fakes.eci.server.FakeECI` (programmatic) and `python -m fakes.eci` / `vkeci fake-eci` (CLI).
See `fakes/README.md` for what is faithful, what is inferred and the admin API.
"""
