# Contrastive video-report pre-training (cinefm.train.pretrain): one job trains the run
# (or resumes it from its state/ folder after a preemption) and embeds the validation
# clips and reports; two small CPU rules evaluate the embeddings (cinefm.embed).
# Run folder: results/pretrain/<pretrain.run>/ (state/ is kept by Snakemake on reruns).

from cinefm.cluster import training_resources

PRETRAIN = config["pretrain"]
PRETRAIN_DIR = pretrain_dir()
# What the training job reads from the config (everything else cannot change its result;
# the UMAP and structure settings only concern pretrain_umap, so changing them does not rerun training).
PRETRAIN_CONFIG = {
    **{k: config[k] for k in ("models", "data")},
    "pretrain": {k: v for k, v in PRETRAIN.items() if not k.startswith(("umap_", "structure_"))},
}


rule pretrain:
    input:
        splits=f"{R}/splits/splits.csv",
        studies=f"{R}/ingest/studies.csv",
        reports=f"{R}/text/reports.json",
        index=f"{R}/text/reports.json.idx",
        tokenizer=f"{R}/text/tokenizer",
    output:
        ckpt=f"{PRETRAIN_DIR}/last.ckpt",
        metrics=f"{PRETRAIN_DIR}/metrics.csv",
        embeddings=f"{PRETRAIN_DIR}/embeddings.h5",
    params:
        config=PRETRAIN_CONFIG,
        out_dir=lambda w, output: os.path.dirname(output.ckpt),
    log:
        f"logs/pretrain/{PRETRAIN['run']}.log",
    benchmark:
        f"logs/benchmarks/pretrain/{PRETRAIN['run']}.tsv"
    threads: PRETRAIN["threads"]
    resources:
        mem_mb=PRETRAIN["mem_mb"],  # per node
        runtime=PRETRAIN["runtime"],
        # gpu (one node), or nodes/tasks_per_node/cpus_per_task/gpu/mpi for srun (docs/cluster.md)
        **training_resources(PRETRAIN, "pretrain"),
    conda:
        env("train")
    script:
        "../scripts/pretrain.py"


rule pretrain_retrieval:
    input:
        embeddings=f"{PRETRAIN_DIR}/embeddings.h5",
    output:
        table=report(f"{PRETRAIN_DIR}/retrieval.csv", category="Pre-training"),
    params:
        ks=PRETRAIN["recall_ks"],
        permutations=PRETRAIN["retrieval_permutations"],
        seed=PRETRAIN["seed"],
    log:
        f"logs/pretrain/{PRETRAIN['run']}_retrieval.log",
    benchmark:
        f"logs/benchmarks/pretrain_retrieval/{PRETRAIN['run']}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        env("train")
    script:
        "../scripts/pretrain_retrieval.py"


rule pretrain_umap:
    input:
        embeddings=f"{PRETRAIN_DIR}/embeddings.h5",
        labels=f"{R}/labels/labels.csv",
    output:
        figure=report(f"{PRETRAIN_DIR}/umap.png", category="Pre-training", caption="../report/umap.rst"),
        structure=report(f"{PRETRAIN_DIR}/structure.csv", category="Pre-training",
                         caption="../report/structure.rst"),
    params:
        diseases=config["labels"]["diseases"],
        n_neighbors=PRETRAIN["umap_neighbors"],
        min_dist=PRETRAIN["umap_min_dist"],
        seed=PRETRAIN["seed"],
        structure_k=PRETRAIN["structure_k"],
        structure_permutations=PRETRAIN["structure_permutations"],
    log:
        f"logs/pretrain/{PRETRAIN['run']}_umap.log",
    benchmark:
        f"logs/benchmarks/pretrain_umap/{PRETRAIN['run']}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        env("train")
    script:
        "../scripts/pretrain_umap.py"

