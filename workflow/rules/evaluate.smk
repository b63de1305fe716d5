# The challenge protocol on the dev set: generate one clip per prompt and seed, then FAD
# and the conditioning score (metrics/*.json, also logged to the training's MLflow run).


rule generate:
    input:
        model=rules.train.output.model,
        manifest=rules.acquire.output.manifest,
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
        manifest=rules.acquire.output.manifest,
        train=rules.train.output.metrics,
        pretrained=pretrained_inputs(PARAMS, "evaluate"),
    output:
        fad=f"{P.METRICS}/fad.json",
        conditioning=f"{P.METRICS}/conditioning.json",
        headline=f"{P.METRICS}/headline.json",
    params:
        settings=stage_settings(PARAMS, "evaluate"),
        code=stage_code("evaluate"),
        cli=CLI_CONFIG,
    threads: 2
    log:
        f"{P.LOGS}/evaluate.log",
    benchmark:
        f"{P.BENCHMARKS}/evaluate.tsv"
    shell:
        "scenesynth evaluate {params.cli} --generated {P.GENERATED} --manifest {input.manifest:q}"
        " --pretrained {P.PRETRAINED:q} --out {P.METRICS} --run {P.RUN} > {log:q} 2>&1"
