"""Stubs of the Open Inference Protocol (KServe v2, package ``inference``), generated from proto/."""
