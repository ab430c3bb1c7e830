"""From a win rate to a model: the rule (:mod:`.rule`), the model names that carry a request
(:mod:`.router_names`), and how a threshold is found: offline calibration (:mod:`.calibration`) or an
online window (:mod:`.online`)."""

from .calibration import calibrate_models, calibrate_threshold, share_threshold
from .online import OnlineThreshold
from .router_names import AUTO, check_route, parse_model_name
from .rule import (
    CostWeight,
    Decision,
    ModelPair,
    check_models,
    choose,
    choose_models,
    is_strong,
)

__all__ = [
    "AUTO",
    "CostWeight",
    "Decision",
    "ModelPair",
    "OnlineThreshold",
    "calibrate_models",
    "calibrate_threshold",
    "check_models",
    "check_route",
    "choose",
    "choose_models",
    "is_strong",
    "parse_model_name",
    "share_threshold",
]
