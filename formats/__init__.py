"""CDR input formats: one module per format, each with its reader and its writer.

``formats.registry`` is the one table of format names that the commands, the
stream workers and the simulator use.
"""
