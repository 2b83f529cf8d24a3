"""CDR input formats (CONTRACT section 1): one module per format, each a reader and a writer.

* :mod:`formats.json_lines`, :mod:`formats.asterisk`, :mod:`formats.freeswitch`,
  :mod:`formats.header_csv`: the formats;
* :mod:`formats.registry`: the one table of format names that the commands, the
  stream workers' ingest and the simulator use;
* :mod:`formats.files` (opening: gzip, stdin, BOM, UTF-16 refused),
  :mod:`formats.sniff` (``--format auto``), :mod:`formats.ordering` (event time),
  :mod:`formats.reading` (all of it for a list of files);
* :mod:`formats.fields`, :mod:`formats.csv_rows`, :mod:`formats.switch_time`: the
  checks and the parsing every reader shares.

Readers never raise on bad input: a record that cannot be a call becomes a
:class:`~detectors.records.Rejected` with a reason.
"""
