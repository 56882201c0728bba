"""Uploads from the browser: resumable chunked files, zips, and photos wrapped as DICOM.

Every path ends in the one ingest pipeline (:func:`studies.ingest.instances_ingest`).
``services`` holds the writes (sessions, chunks, completion, cleanup),
``assembly`` streams the chunks back into one file and expands zips,
``sc`` wraps a photo of a film or an ECG strip into a Secondary Capture object.
"""
