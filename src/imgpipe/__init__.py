"""The `imgpipe` command: the local cloud and the measurements behind one parser."""
