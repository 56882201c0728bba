"""DICOMweb (PS3.18) at /dicom-web/: STOW-RS, QIDO-RS and WADO-RS."""
