"""The Redis toolkit both services share: one Lua-script runner (`scripts`), one stream
consumer-group reader (`streams`), one partition-count guard (`partitions`) and one retry
policy (`retry`)."""
