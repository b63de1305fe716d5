# The listening report: `snakemake --report report.html` after a run shows, per dev prompt, the
# generated clip (player), its log-mel next to the reference's, and a metrics page. This rule
# only writes those pages (scenesynth.report.pages); Snakemake's report embeds them.
from scenesynth.workflow.rules import prompt_labels

REPORT = P.REPORT


rule report_assets:
    input:
        record=rules.generate.output.record,
        fad=rules.evaluate.output.fad,
        conditioning=rules.evaluate.output.conditioning,
        clap=rules.evaluate.output.clap,
        per_prompt=rules.evaluate.output.per_prompt,
        train=rules.train.output.metrics,
        manifest=rules.dev_set.output.manifest,
    output:
        prompts=report(
            directory(f"{REPORT}/prompts"),
            patterns=["{prompt}.html"],
            caption="../report/prompt.rst",
            category="Listening",
            subcategory="Dev prompts",
            labels=lambda wildcards: prompt_labels(f"{REPORT}/prompts.json", wildcards.prompt),
        ),
        metrics=report(f"{REPORT}/metrics.html", caption="../report/metrics.rst", category="Metrics"),
        captions=f"{REPORT}/prompts.json",
    params:
        settings=stage_settings(PARAMS, "report_assets"),
        code=stage_code("report_assets"),
        cli=CLI_CONFIG,
    log:
        f"{P.LOGS}/report_assets.log",
    shell:
        "scenesynth report-assets {params.cli} --generated {P.GENERATED} --manifest {input.manifest:q}"
        " --metrics {P.METRICS} --out {REPORT} > {log:q} 2>&1"
