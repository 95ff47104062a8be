"""Remote evaluation: a service on a GPU box computes checks (`python -m pytest_aigve serve`), a pytest run on a
CPU runner sends them there (`--aigve-remote URL`) and keeps collection, gates, baselines and reports local.

wire.py: what travels (a check's request and its result, as plain JSON data); store.py: the per-token,
content-addressed blob store; jobs.py: the bounded one-at-a-time job queue; server.py: the FastAPI service (needs
the `serve` extra); client.py: the stdlib-only client the plugin uses."""

API_VERSION = "v1"
TOKEN_ENV = "AIGVE_REMOTE_TOKEN"
