"""The index: everything translation reads, derived once per input snapshot and shared by
every proxy (Istio's PushContext). Services and endpoints, routing rules, and policies are
separate parts, each rebuildable on its own."""
