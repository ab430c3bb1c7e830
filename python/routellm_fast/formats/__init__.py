"""Every file format the package reads or writes: tables (:mod:`.tables`), sw_ranking arenas
(:mod:`.arena`), RouteLLM mf checkpoints (:mod:`.checkpoints`), preference battles (:mod:`.preference`),
model-name tables (:mod:`.model_names`), prompt keys (:mod:`.prompt_keys`) and the resolver of RouteLLM's
hub names to local files (:mod:`.hub`)."""
