# Training: the GAN on the mel shards + text cache. An interrupted run resumes
# from runs/train/checkpoints/last.pt (not a declared output, so Snakemake keeps it).


rule train:
    input:
        shards=rules.mel.output.index,
        text=rules.text.output.info,
    output:
        model=f"{P.RUN}/model.pt",
        metrics=f"{P.METRICS}/train.json",
    params:
        settings=section(PARAMS, "audio", "model", "loss", "train", "seed"),
        code=source_fingerprint("models", "losses", "training", "text", "features", "inference", "utils"),
        cli=CLI_CONFIG,
    threads: 4
    log:
        f"{P.LOGS}/train.log",
    benchmark:
        f"{P.BENCHMARKS}/train.tsv"
    shell:
        "scenesynth train {params.cli} --shards {P.MELS} --text {P.TEXT} --out {P.RUN}"
        " --metrics {output.metrics:q} > {log:q} 2>&1"
