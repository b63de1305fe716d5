# The challenge protocol on the dev set: the dev set itself (its prompts and FAD reference), one
# generated clip per prompt and seed, then FAD, the CLAP score, per-prompt scores and the demo's
# conditioning score (metrics/*, also logged to the training's MLflow run). Training never
# depends on these rules, so a failed dev-set download holds nothing upstream back.

localrules:
    fetch_dcase_dev,
    dev_set,


rule fetch_dcase_dev:
    output:
        report=f"{P.DCASE_DEV}/report.json",
    params:
        settings=stage_settings(PARAMS, "fetch_dcase_dev"),
        code=stage_code("fetch_dcase_dev"),
        cli=CLI_CONFIG,
    log:
        f"{P.LOGS}/fetch_dcase_dev.log",
    shell:
        "scenesynth fetch-dcase-dev {params.cli} --out {P.DCASE_DEV:q} > {log:q} 2>&1"


rule dev_set:
    input:
        **dev_set_inputs(PARAMS),
    output:
        manifest=f"{P.DEV}/manifest.parquet",
        reference=f"{P.DEV}/reference.json",
    params:
        settings=stage_settings(PARAMS, "dev_set"),
        code=stage_code("dev_set"),
        cli=CLI_CONFIG,
        sources=lambda wildcards, input: dev_set_options(dict(input.items())),
    log:
        f"{P.LOGS}/dev_set.log",
    shell:
        "scenesynth dev-set {params.cli} {params.sources} --out {P.DEV} > {log:q} 2>&1"


# The audio reading's real clips through Griffin-Lim (evaluation/resynth_reference.py): they depend on the
# data alone, so they are made beside training, on the core the demo's one-thread training leaves free.
# The shards are an input for the order alone: on 2 cores this job must not start ahead of the mel
# stage, which would then wait for both cores while the training it feeds waits for it.


rule resynth_reference:
    input:
        manifest=rules.dev_set.output.manifest,
        train_manifest=rules.acquire.output.manifest,
        after=rules.mel.output.index,
    output:
        reference=f"{P.RESYNTH}/{P.RESYNTH_FILE}",
    params:
        settings=stage_settings(PARAMS, "resynth_reference"),
        code=stage_code("resynth_reference"),
        cli=CLI_CONFIG,
    threads: 1
    log:
        f"{P.LOGS}/resynth_reference.log",
    benchmark:
        f"{P.BENCHMARKS}/resynth_reference.tsv"
    shell:
        "scenesynth resynth-reference {params.cli} --manifest {input.manifest:q}"
        " --train-manifest {input.train_manifest:q} --out {P.RESYNTH} > {log:q} 2>&1"


rule generate:
    input:
        model=rules.train.output.model,
        manifest=rules.dev_set.output.manifest,
        pretrained=pretrained_inputs(PARAMS, "generate"),
    output:
        record=f"{P.GENERATED}/generation.json",
    params:
        settings=stage_settings(PARAMS, "generate"),
        code=stage_code("generate"),
        cli=CLI_CONFIG,
    threads: 2
    log:
        f"{P.LOGS}/generate.log",
    benchmark:
        f"{P.BENCHMARKS}/generate.tsv"
    shell:
        "scenesynth generate {params.cli} --model {input.model:q}"
        " --manifest {input.manifest:q} --pretrained {P.PRETRAINED:q} --out {P.GENERATED} > {log:q} 2>&1"


rule evaluate:
    input:
        record=rules.generate.output.record,
        manifest=rules.dev_set.output.manifest,
        reference=rules.dev_set.output.reference,
        train_manifest=rules.acquire.output.manifest,
        train=rules.train.output.metrics,
        model=rules.train.output.model,
        pretrained=pretrained_inputs(PARAMS, "evaluate"),
        **resynth_reference_inputs(PARAMS),
    output:
        fad=f"{P.METRICS}/fad.json",
        clap=f"{P.METRICS}/clap_score.json",
        per_prompt=f"{P.METRICS}/per_prompt.csv",
        conditioning=f"{P.METRICS}/conditioning.json",
        headline=f"{P.METRICS}/headline.json",
    params:
        settings=stage_settings(PARAMS, "evaluate"),
        code=stage_code("evaluate"),
        cli=CLI_CONFIG,
        resynth=lambda wildcards, input: option_of(dict(input.items()), "resynth_reference"),
    threads: 2
    log:
        f"{P.LOGS}/evaluate.log",
    benchmark:
        f"{P.BENCHMARKS}/evaluate.tsv"
    shell:
        "scenesynth evaluate {params.cli} --generated {P.GENERATED} --manifest {input.manifest:q}"
        " --train-manifest {input.train_manifest:q} --model {input.model:q} --pretrained {P.PRETRAINED:q} --cache {P.EMBEDDING_CACHE:q}"
        " --out {P.METRICS} --run {P.RUN} {params.resynth} > {log:q} 2>&1"
