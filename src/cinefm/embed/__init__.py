"""After pre-training: embeddings of the validation clips and reports, retrieval and UMAP.

Modules
-------
- ``store``      ``EmbeddingSet`` and ``embeddings.h5`` (write/read): clip video embeddings,
                 report text embeddings, their study/patient ids and views.
- ``retrieval``  recall@k of video→text and text→video retrieval against chance (pure numpy)
                 and ``retrieval.csv``.
- ``umap_plot``  2-D UMAP of the embeddings coloured by disease and ``umap.png``.
- ``structure``  disease structure as a number: leave-one-out k-NN disease AUROC of the
                 study embeddings against permuted labels, ``structure.csv``.
- ``extract``    the Lightning side: the report dataset, the prediction writer and
                 ``embed_validation`` (runs ``Trainer.predict`` of the pre-training module).
- ``cli``        ``cinefm retrieval`` and ``cinefm umap``.
"""
