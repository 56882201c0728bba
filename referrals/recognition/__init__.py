"""Result mutual recognition (检查结果互认): the rules engine and the decisions.

``evaluate_recognition(study, institution, on=date)`` says whether a prior study
is recognizable at ``institution`` and why, from the region's rules (data);
``recognition_decide`` records a doctor's 互认 / 不互认.
"""

from referrals.recognition.engine import (
    Check,
    EffectiveRule,
    Evaluation,
    effective_rule,
    evaluate_recognition,
    exam_price,
)
from referrals.recognition.services import (
    DOCTOR_ROLES,
    RecognitionError,
    deciding_institutions,
    recognition_decide,
    recognition_link_repeat,
    recognition_rule_seed,
    study_quality_set,
)

__all__ = [
    "DOCTOR_ROLES",
    "Check",
    "EffectiveRule",
    "Evaluation",
    "RecognitionError",
    "deciding_institutions",
    "effective_rule",
    "evaluate_recognition",
    "exam_price",
    "recognition_decide",
    "recognition_link_repeat",
    "recognition_rule_seed",
    "study_quality_set",
]
