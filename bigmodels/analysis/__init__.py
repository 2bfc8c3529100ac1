"""Measurements and explanations over trained models: evaluation, explanations,
perturbations, the scale explorer's measurements, scaling-law fits, the article's
fixes and the challenges' calculators. No run store: reports over runs are in
``bigmodels.reports``."""
