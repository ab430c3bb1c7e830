"""Serving routers: the :class:`~.controller.Controller` (RouteLLM's), the OpenAI-compatible server
(:mod:`.server`), the upstream client (:mod:`.upstream`), RouteLLM's patch (:mod:`.routellm_patch`),
batch scoring (:mod:`.batch`) and Ray (:mod:`.ray`)."""
