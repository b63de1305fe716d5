"""What a person reads after a run: the listening report's pages (pages, the `report-assets` stage)
and the terminal summary of where everything is (summary, the `summary` verb)."""
