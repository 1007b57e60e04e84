"""Predictive autoscaling, pure Python (no Ray): forecasters, the scaling optimizer, cost-benefit.

Ray and Serve adapters live in their own modules and wrap these classes.
"""

from .config import ScalingConfig
from .cost import (
    CostBenefit,
    assess_change,
    erlang_b,
    erlang_c,
    mmc_mean_wait,
    mmc_prob_response_exceeds,
    mmc_prob_wait_exceeds,
    mmc_response_percentile,
    slo_rate_limit,
)
from .ensemble import Ensemble, default_ensemble
from .forecast import Forecast, Forecaster
from .models import (
    MODELS,
    Holt,
    HoltWinters,
    LinearTrend,
    MovingAverage,
    Naive,
    SeasonalNaive,
    SimpleExponentialSmoothing,
)
from .optimizer import Decision, Sample, ScalingOptimizer

__all__ = [
    "MODELS",
    "CostBenefit",
    "Decision",
    "Ensemble",
    "Forecast",
    "Forecaster",
    "Holt",
    "HoltWinters",
    "LinearTrend",
    "MovingAverage",
    "Naive",
    "Sample",
    "SeasonalNaive",
    "ScalingConfig",
    "ScalingOptimizer",
    "SimpleExponentialSmoothing",
    "assess_change",
    "default_ensemble",
    "erlang_b",
    "erlang_c",
    "mmc_mean_wait",
    "mmc_prob_response_exceeds",
    "mmc_prob_wait_exceeds",
    "mmc_response_percentile",
    "slo_rate_limit",
]
