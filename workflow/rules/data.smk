# Data: raw manifest (acquire.smk) -> resample (48 kHz) -> mel shards, and the text-embedding cache.


rule resample:
    input:
        manifest=rules.acquire.output.manifest,
    output:
        manifest=f"{P.AUDIO_48K}/manifest.parquet",
        rejects=f"{P.AUDIO_48K}/rejects.csv",
    params:
        settings=stage_settings(PARAMS, "resample"),
        code=stage_code("resample"),
        cli=CLI_CONFIG,
    threads: 8
    log:
        f"{P.LOGS}/resample.log",
    benchmark:
        f"{P.BENCHMARKS}/resample.tsv"
    shell:
        "scenesynth resample {params.cli} --workers {threads} --manifest {input.manifest:q}"
        " --out {P.AUDIO_48K} > {log:q} 2>&1"


rule mel:
    input:
        manifest=rules.resample.output.manifest,
    output:
        index=f"{P.MELS}/index.json",
        rejects=f"{P.MELS}/rejects.csv",
    params:
        settings=stage_settings(PARAMS, "mel"),
        code=stage_code("mel"),
        cli=CLI_CONFIG,
    threads: 8
    log:
        f"{P.LOGS}/mel.log",
    benchmark:
        f"{P.BENCHMARKS}/mel.tsv"
    shell:
        "scenesynth mel {params.cli} --workers {threads} --manifest {input.manifest:q}"
        " --out {P.MELS} > {log:q} 2>&1"


rule text:
    input:
        manifest=rules.acquire.output.manifest,
        pretrained=pretrained_inputs(PARAMS, "text"),
    output:
        info=f"{P.TEXT}/info.json",
        captions=f"{P.TEXT}/captions.parquet",
        vocab=f"{P.TEXT}/vocab.npz",
    params:
        settings=stage_settings(PARAMS, "text"),
        code=stage_code("text"),
        cli=CLI_CONFIG,
    log:
        f"{P.LOGS}/text.log",
    shell:
        "scenesynth text {params.cli} --manifest {input.manifest:q} --pretrained {P.PRETRAINED:q} --out {P.TEXT}"
        " > {log:q} 2>&1"
