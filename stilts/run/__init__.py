"""One run of the X-STILTs pipeline: `plan` the stages and their keys, `acquire` each from the stage
store or `fit` it, `evaluate` the target zero-shot, and write the run `folder`'s results
(`pipeline.run_pipeline` reads top to bottom). Only this package ties model, data and evaluation."""
