"""Serving routers: the :class:`~.controller.Controller` (RouteLLM's), the OpenAI-compatible server
(:mod:`.server`; its one table from errors to HTTP statuses is :mod:`.http_errors`), the upstream
client (:mod:`.upstream`), RouteLLM's patch (:mod:`.routellm_patch`), batch scoring (:mod:`.batch`)
and Ray (:mod:`.ray`)."""
