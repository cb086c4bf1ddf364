"""The running control plane: wiring of sources, store, translation, xDS and the CA.

``runtime`` starts everything; ``push`` keeps the xDS cache translated from the newest
snapshot (through ``debounce``); ``workload_certs`` issues and renews per-identity SDS
secrets; ``monitoring``/``observer``/``metrics``/``config_dump`` serve the 15014 port;
``settings`` is the one settings object, built by the CLI and passed down.
"""
