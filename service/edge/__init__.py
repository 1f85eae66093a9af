"""The edge: everything that speaks a protocol, and nothing that scores.

Owns the gRPC servicer (``servicer``), tolerant request decoding (``wire``), protobuf <->
domain conversion (``convert``; KServe's in ``kserve_convert``), the KServe v2 servicer, the
HTTP routes (``http_app``), the one mapping of errors to gRPC and HTTP statuses (``status``),
security (``tls``, ``auth``, ``security``) and the process that serves them all (``server``).
May import the engine (and, to assemble the server, the backends) and the service root; the
engine never imports it back.
"""
