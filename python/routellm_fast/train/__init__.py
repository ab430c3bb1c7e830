"""Training routers: fitting mf and sw_ranking (:mod:`.fit`), the recipes that build the shipped
routers (:mod:`.recipe`, :mod:`.bert_recipe`) and the static embedder's distillation
(:mod:`.static_distill`). The bert recipe needs the ``train`` extra."""
