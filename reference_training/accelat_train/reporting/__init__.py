"""Reading what runs leave behind: the run report and the comparison summary (``report``,
``summary``), its tables (``tables``) and figures (``plots``)."""
