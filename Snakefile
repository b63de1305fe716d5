# scenesynth: the whole DAG of the paper's system (see docs/design.md).
#   snakemake --cores all                                    # the paper's setup (params.yaml)
#   snakemake --cores all --config overlay=config/demo.yaml  # the offline demo (what `make demo` runs)
# Rules are thin: each calls `scenesynth <verb>`; settings come from params.yaml only.

configfile: "params.yaml"
report: "workflow/report/workflow.rst"  # `snakemake --report report.html`: the listening report


include: "workflow/rules/common.smk"
include: "workflow/rules/acquire.smk"
include: "workflow/rules/pretrained.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        f"{P.METRICS}/fad.json",
        f"{P.METRICS}/clap_score.json",
        f"{P.METRICS}/per_prompt.csv",
        f"{P.METRICS}/conditioning.json",
        f"{REPORT}/metrics.html",
