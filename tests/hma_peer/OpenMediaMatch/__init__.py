"""A stand-in for Meta's ``OpenMediaMatch`` package (Hasher-Matcher-Actioner) that lets HMA's own
API tests (``../shared/peers/hma-api-tests``, unchanged) drive a real ``reclaim serve-platform``
over HTTP.

The tests import fixtures and helpers from ``OpenMediaMatch.tests.utils`` and a few HMA internals
(``persistence.get_storage``, ``background_tasks.build_index``, ``blueprints.matching``…). This
package gives them:

- ``tests.utils``: the fixtures (``app``, ``client``, ``image_server``), ``create_bank``,
  ``add_hash_to_bank`` and ``IMAGE_URL_TO_PDQ``, as HMA's, with ``app`` a fresh
  ``reclaim serve-platform`` process (a new database per test) and ``client`` an HTTP client
  with a flask-test-client interface that sends a bearer token on every request;
- the internals, only as far as they map onto reclaim's HTTP API (``harness.HttpStorage``);
  everything else raises ``HmaInternal``, and the tests that need it are deselected with the
  reason (``hma_harness.INTERNAL_ONLY``).
"""
