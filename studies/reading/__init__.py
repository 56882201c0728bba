"""Reading: routing studies to reading pools, worklists, claims, reports and their PDFs."""
