from pathlib import Path

from cinefm.log import setup_logging
from cinefm.privacy import load_key
from cinefm.text.reports import build_reports

setup_logging(snakemake.log[0])
text = snakemake.params.text
build_reports(
    snakemake.input.reports,
    Path(snakemake.output.json).parent,
    load_key(snakemake.params.key_file, phantom=snakemake.params.phantom),
    stanza_dir=text.get("stanza_dir"),
    tokenizer_dir=text.get("tokenizer_dir"),
    vocab_size=text["vocab_size"],
    min_frequency=text["min_frequency"],
    max_tokens=text["max_tokens"],
)
