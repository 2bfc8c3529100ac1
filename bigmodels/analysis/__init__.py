"""Measurements and explanations over trained models: evaluation, saliency, perturbations, scaling, comparison."""
