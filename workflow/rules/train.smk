# Training: the GAN on the mel shards + text cache. An interrupted run resumes
# from runs/train/checkpoints/last.pt (not a declared output, so Snakemake keeps it).
# `exec`: the training process replaces the shell, so SLURM's SIGTERM (time limit, preemption)
# reaches it directly; it then writes a checkpoint at the step it is at and exits 75, and a
# retry of the job (profiles/slurm: preemptible-rules) resumes it (docs/cluster.md).
# train.processes_per_node > 1: `scenesynth train` re-runs itself under torchrun (DDP,
# one process per GPU); the job then needs processes_per_node GPUs and the threads
# below (docs/cluster-training.md). How many processes train does not change what is
# learnt, so those two keys are left out of the rerun trigger.
# train.eval_every > 0: the dev set and the models generate/evaluate use are inputs too
# (training scores the dev set as it goes: training/periodic_eval.py); 0 drops them.


rule train:
    input:
        shards=rules.mel.output.index,
        text=rules.text.output.info,
        **train_eval_inputs(PARAMS),
    output:
        model=f"{P.RUN}/model.pt",
        metrics=f"{P.METRICS}/train.json",
    params:
        settings=stage_settings(PARAMS, "train"),
        code=stage_code("train"),
        cli=CLI_CONFIG,
    threads: train_threads(PARAMS)
    log:
        f"{P.LOGS}/train.log",
    benchmark:
        f"{P.BENCHMARKS}/train.tsv"
    shell:
        "exec scenesynth train {params.cli} --shards {P.MELS} --text {P.TEXT} --out {P.RUN}"
        " --metrics {output.metrics:q} --pretrained {P.PRETRAINED:q} --cache {P.EMBEDDING_CACHE:q}"
        " --dev-manifest {P.DEV}/manifest.parquet --train-manifest {P.RAW}/manifest.parquet > {log:q} 2>&1"
