"""The result store: the project folder's SQLite file and everything that reads or writes it.

* :mod:`.file`: opening (read-only for reading commands), the integrity check and the errors
  naming the file (:class:`~surfbench.store.file.StoreError` and its kinds);
* :mod:`.schema`: every table, the one ``SCHEMA_VERSION`` and the migration of older stores;
* :mod:`.records`: a record's stored row and which of its labels changed;
* :mod:`.results`: :class:`~surfbench.store.results.ResultStore` (records, models, results,
  frame results, analyses);
* :mod:`.md_runs`: the MD stability runs; :mod:`.trainings`: the models ``surfbench train`` made;
* :mod:`.selection`: which stored runs a command reads and how it labels them (one rule).

Nothing outside this package holds the SQLite connection or writes SQL: the other packages
pass plain rows to these modules' functions.
"""
