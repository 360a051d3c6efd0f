"""Molecular-dynamics stability of slabs: NVT runs at a fraction of the melting point
(:mod:`.md`), verdicts with a failure taxonomy (:mod:`.verdicts`), settings and presets
(:mod:`.presets`), their rows of the result store's ``md_runs`` table (:mod:`.rows`), the choice of
slabs (:mod:`.select`) and the ``surfbench md`` command (:mod:`.cli`)."""
