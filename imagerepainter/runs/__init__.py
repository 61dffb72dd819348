"""What a command-line run leaves behind: the run folder (:mod:`~imagerepainter.runs.folder`) and its
``run.json`` record (:mod:`~imagerepainter.runs.record`); the folder writes the run's HTML report with
:mod:`imagerepainter.report`."""
