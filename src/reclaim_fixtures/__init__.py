"""Fixture generators shared by ``tests/``, ``bench/`` and ``training/``: not part of reclaim.

Nothing in the runtime package (``reclaim``) imports this package, and reclaim itself never
makes or edits images; the one exception is ``reclaim.sample``, which has ``faces`` make the
copies of a public-domain face that ``reclaim demo``'s sample collection holds. It lives under
``src/`` only so that tests, benchmarks and training scripts import it normally
(``from reclaim_fixtures import faces``) instead of reaching into ``tests/`` through
``sys.path``.

- ``faces``: manipulated variants of a person's photos (crop, re-encode, mirror, low resolution,
  occlusion, a crude face paste, a photo inside a scene) for face search tests and benches;
- ``provenance``: C2PA test certificates and signing;
- ``telegram``: Telegram Desktop exports (account and chat) written to a folder;
- ``hostile_media``: small hostile files (decompression bombs, truncated and lying headers);
- ``fuzz``: fuzz targets over the untrusted-input readers, and the harness that runs them (the
  CI smoke test and ``bench/fuzz.py``).
"""
