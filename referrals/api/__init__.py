"""The referral, patient-index and recognition API under /api/ (see urls.py)."""
