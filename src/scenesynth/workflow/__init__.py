"""The DAG described once: which params and which code each stage depends on (stages), the helpers
the Snakemake rules call (rules), and dvc.yaml derived from the same table (dvc)."""
