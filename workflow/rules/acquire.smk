# Acquisition: the demo is synthesised by `acquire` itself, a custom folder
# (data.source: custom) read by it; the paper's data (data.source: audiocaps_wavcaps)
# is fetched by the rules below and merged by `acquire`. The fetch rules need the
# internet, so they are local rules (the login node on a cluster). Downloads resume
# and verified files are never fetched again; only the small reports are declared
# outputs, so a rerun never deletes audio. A custom folder is outside the DAG: the
# acquire rule's `inventory` (caption file + folder listing) reruns it when it changes.
# The evaluation's dev set is not training data: its rules are in evaluate.smk.

localrules:
    fetch_audiocaps_csv,
    fetch_audiocaps_audio,
    fetch_wavcaps,


rule fetch_audiocaps_csv:
    output:
        csv=expand(f"{P.AUDIOCAPS}/csv/{{split}}.csv", split=AUDIOCAPS_SPLITS),
        checksums=f"{P.AUDIOCAPS}/csv/checksums.json",
    params:
        settings=stage_settings(PARAMS, "fetch_audiocaps_csv"),
        code=stage_code("fetch_audiocaps_csv"),
        cli=CLI_CONFIG,
    log:
        f"{P.LOGS}/fetch_audiocaps_csv.log",
    shell:
        "scenesynth fetch-audiocaps-csv {params.cli} --out {P.AUDIOCAPS:q}/csv > {log:q} 2>&1"


rule fetch_audiocaps_audio:
    input:
        csv=rules.fetch_audiocaps_csv.output.csv,
    output:
        manifest=f"{P.AUDIOCAPS}/manifest.parquet",
        coverage=f"{P.AUDIOCAPS}/coverage.json",
    params:
        settings=stage_settings(PARAMS, "fetch_audiocaps_audio"),
        code=stage_code("fetch_audiocaps_audio"),
        cli=CLI_CONFIG,
    log:
        f"{P.LOGS}/fetch_audiocaps_audio.log",
    benchmark:
        f"{P.BENCHMARKS}/fetch_audiocaps_audio.tsv"
    shell:
        "scenesynth fetch-audiocaps-audio {params.cli} --csv {P.AUDIOCAPS:q}/csv --out {P.AUDIOCAPS:q}"
        " > {log:q} 2>&1"


rule fetch_wavcaps:
    input:
        csv=rules.fetch_audiocaps_csv.output.csv,
    output:
        manifest=f"{P.WAVCAPS}/manifest.parquet",
        report=f"{P.WAVCAPS}/report.json",
    params:
        settings=stage_settings(PARAMS, "fetch_wavcaps"),
        code=stage_code("fetch_wavcaps"),
        cli=CLI_CONFIG,
    log:
        f"{P.LOGS}/fetch_wavcaps.log",
    benchmark:
        f"{P.BENCHMARKS}/fetch_wavcaps.tsv"
    shell:
        "scenesynth fetch-wavcaps {params.cli} --audiocaps-csv {P.AUDIOCAPS:q}/csv --out {P.WAVCAPS:q}"
        " > {log:q} 2>&1"


rule acquire:
    input:
        **acquire_inputs(PARAMS),
    output:
        manifest=f"{P.RAW}/manifest.parquet",
        report=f"{P.RAW}/report.json",
    params:
        settings=stage_settings(PARAMS, "acquire"),
        code=stage_code("acquire"),
        inventory=acquire_inventory(PARAMS),
        cli=CLI_CONFIG,
        sources=lambda wildcards, input: " ".join(f"--{name} {shlex.quote(path)}" for name, path in input.items()),
    log:
        f"{P.LOGS}/acquire.log",
    shell:
        "scenesynth acquire {params.cli} {params.sources} --out {P.RAW} > {log:q} 2>&1"

