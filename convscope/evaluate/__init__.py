"""``convscope evaluate``: which explanation method can be trusted, measured.

* :mod:`~convscope.evaluate.metrics`: deletion and insertion AUC (Petsiuk et al. 2018), a
  ROAD-style remove-and-debias score (Rong et al. 2022) and rank correlations, as batched torch
  functions of a score function, an input and an importance map;
* :mod:`~convscope.evaluate.randomize`: the cascading model-randomisation copies of Adebayo et al. 2018;
* :mod:`~convscope.evaluate.evaluator`: maps from the engine (public API, ``keep_raw``), the metrics
  per image and method;
* :mod:`~convscope.evaluate.report`: CSV, JSON and PNG plots.
"""
