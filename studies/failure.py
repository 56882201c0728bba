"""STOW-RS Failure Reason codes (PS3.18 Table 10.5.3-1 / PS3.4 C.4.2.1.4, DIMSE statuses).

The hub's documented choice for a SOP Instance UID already stored with other
bytes is 0x0111 "Duplicate SOP Instance" with HTTP 409: the stored object is
never replaced.
"""

PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122

# Reasons that describe a conflict with what the hub holds, rather than bad syntax.
CONFLICTS = frozenset({DUPLICATE_SOP_INSTANCE, DATASET_DOES_NOT_MATCH, SOP_CLASS_NOT_SUPPORTED})
