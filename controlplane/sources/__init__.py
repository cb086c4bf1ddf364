"""Where input comes from: a YAML folder (watched), the Kubernetes API (list+watch),
or memory (tests). Every source feeds the Store under its own source id.

Modules: ``yaml_loader`` (documents with origins and field lines), ``parsing``
(document -> model, or diagnostics), ``folder``, ``kubernetes`` + ``reflector``,
``memory``, ``diagnostics``. Import what you use from them; this package imports
nothing eagerly, so the CLI's ``analyze`` never loads the Kubernetes client.
"""
