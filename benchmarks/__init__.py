"""Benchmarks that compare the hub with an Orthanc on this machine (see README.md)."""
