"""Report text: PHI scrubbing, sentence splitting, tokenization and the indexed JSON.

Stage ``reports`` (``workflow/rules/reports.smk``, ``cinefm reports``): a hospital's
report CSV becomes ``results/text/reports.json`` (+ ``.idx``), the tokenizer in
``results/text/tokenizer/`` and a scrubbed, pseudonymized ``results/text/reports.csv``
that the label stage reads. Nothing downstream sees raw names, dates or record numbers.
"""
