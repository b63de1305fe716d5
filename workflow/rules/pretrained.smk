# Pre-trained models (CLAP text encoder and re-ranker, 48 kHz HiFi-GAN, PANNs): fetched once
# into data/pretrained/<name>/ with their checksums, then loaded offline by text, generate
# and evaluate. Only the stages whose params choose a real model depend on them.

localrules:
    fetch_pretrained,


rule fetch_pretrained:
    output:
        source=f"{P.PRETRAINED}/{{name}}/source.json",
    wildcard_constraints:
        name="|".join(PIPELINE_MODELS),
    params:
        settings=lambda wildcards: {**stage_settings(PARAMS, "fetch_pretrained"),
                                    "model": PARAMS["pretrained"][wildcards.name]},
        code=stage_code("fetch_pretrained"),
        cli=CLI_CONFIG,
    log:
        f"{P.LOGS}/fetch_pretrained_{{name}}.log",
    shell:
        "scenesynth fetch-pretrained {params.cli} --name {wildcards.name} --out {P.PRETRAINED:q} > {log:q} 2>&1"
