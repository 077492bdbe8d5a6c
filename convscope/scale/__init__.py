"""Dataset-scale runs on a Ray cluster (``convscope explain --ray``), an optional extra.

Nothing here imports Ray at module level except :mod:`convscope.scale.pipeline`, which only
``--ray`` runs load: ``pip install 'convscope[ray]'`` adds it. The pieces:

* :mod:`~convscope.scale.job`: what every worker needs to rebuild the run (model flags, resolved
  layer and targets) and the worker that runs one batch through an engine and writes it;
* :mod:`~convscope.scale.ledger`: per-item records of finished work, checked by content hash, so a
  stopped job resumes where it stopped;
* :mod:`~convscope.scale.cluster`: connecting to (or starting) a cluster, sizing the worker pool;
* :mod:`~convscope.scale.pipeline`: the Ray Data pipeline (decode -> engine actors -> records);
* :mod:`~convscope.scale.explain`: the ``explain --ray`` driver: plan, progress, report.json.
"""
