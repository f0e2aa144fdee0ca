"""The suite's caption metrics as a Hugging Face `evaluate` module, loadable offline from a local path:

    import evaluate, evals.metrics.hf as hf
    m = evaluate.load(hf.CAPTION_METRICS)     # a directory: no Hub access
    m.compute(predictions=["a cat"], references=[["a cat sits"]])

Same numbers as `evals.metrics.caption.caption_scores` (pycocoevalcap, corpus-level, one tokenized pass).
"""
import datasets
import evaluate

from evals.metrics.caption import DEFAULT, caption_scores

_DESCRIPTION = "BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap), corpus-level over all items."
_KWARGS = """predictions: list of str; references: list of list of str; metrics: optional list of names."""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class CaptionMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references, metrics=None, meteor_timeout=600.0):
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
        refs = {str(i): list(r) for i, r in enumerate(references)}
        preds = {str(i): p for i, p in enumerate(predictions)}
        res = caption_scores(refs, preds, tuple(metrics or DEFAULT), meteor_timeout)
        return {name: r.value for name, r in res.items()}
