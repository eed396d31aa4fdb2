"""Disease labels from report text: three backends behind one interface, and agreement.

Stage ``labels`` (``workflow/rules/reports.smk``, ``cinefm labels``) reads the scrubbed
report table of the ``reports`` stage and writes ``results/labels/labels.csv``: per
study one column per disease (1 present, 0 absent / negated / not mentioned, empty when
hedged or unknown), the LVEF stated in the report, the backend and the model. Backends
(:mod:`cinefm.labels.backends`): ``rules`` (report sections and fields + NegEx-style cues,
offline, the default; scored on hand-labelled reports by :mod:`cinefm.labels.evaluation`),
``openai`` (any OpenAI-compatible chat-completions server on this machine or the
cluster) and ``hf`` (a local transformers causal LM). ``agreement`` compares the labels
with human annotators (:mod:`cinefm.labels.agreement`).
"""
