"""Pure metric layer with official XTREME / SQuAD semantics, so our scores compare with published ones.

Import the modules themselves (`stilts.eval.qa`, `stilts.eval.retrieval`, ...): the package imports
nothing eagerly, so a reader of scores (stilts.report) does not pay for torch."""
