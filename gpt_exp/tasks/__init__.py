"""One module per task; `conf/task/<name>.yaml` names its class with `_target_`."""
