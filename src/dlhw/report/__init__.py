"""The report: collect run directories, draw plots, write Markdown and HTML."""
