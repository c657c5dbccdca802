"""What tasks share: file readers, Hub and local sources, scoring helpers, prediction files, gold
checks. Not tasks: the registry (stilts.tasks) never imports this package as one."""
