"""streamlearn's `weights` system as an lmms-eval model, so that an exported task
(`streamlearn export --format lmms-eval`) scores a Day-N checkpoint in lmms-eval exactly as
`streamlearn eval` does.

    lmms-eval --model streamlearn --model_args pretrained=CORPUS/runs/main/export/day-03 \\
        --tasks streamlearn_main_day3 --include_path CORPUS/exports/lmms-eval --log_samples --output_path out

Registered with lmms-eval through the `lmms_eval.models` entry point (pyproject.toml). The model
answers in the layout QA targets are trained in (the blank video, the QA instruction, then
"Q: ...\\nA:"): `loglikelihood` returns each continuation's mean log-probability per token (higher is
more likely) from the same code `eval` runs (`LocalAnswerer`), and a request whose context is the
prompt with no question ("Q: \\nA:") is answered from the same cached option priors; `generate_until`
decodes greedily to the end of the line, as `eval` does.
"""

from __future__ import annotations

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest

PRIOR_CONTEXT = "Q: \nA:"  # what `LocalAnswerer.option_priors` scores options after


def manifest() -> ModelManifest:
    """The entry point lmms-eval loads: `--model streamlearn`."""
    return ModelManifest(model_id="streamlearn", simple_class_path="streamlearn.evaluate.lmms_model.StreamlearnModel")


class StreamlearnModel(lmms):
    # a "simple" model: lmms-eval gives chat models message tasks, which cannot be multiple choice
    is_simple = True

    def __init__(self, pretrained: str, device: str | None = None, **kwargs):
        """`pretrained`: a Day-N export folder; `device` (lmms-eval's --device): cpu, cuda[:N] or auto
        (the GPU when there is one, in bf16, as `eval.device`); batch sizes are the model's own."""
        super().__init__()
        from streamlearn.evaluate.systems import LocalAnswerer

        self.answerer = LocalAnswerer(str(pretrained), "lmms-eval", device=device or "auto")

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Requests of one document that share a context are scored in one batch, as `eval` scores an
        item's options; `is_greedy` is not computed (False)."""
        groups: dict[tuple, list[int]] = {}
        for n, req in enumerate(requests):
            ctx = req.args[0]
            groups.setdefault((req.doc_id, req.task_name, ctx), []).append(n)
        out: list[tuple[float, bool] | None] = [None] * len(requests)
        a = self.answerer
        for (_, _, ctx), idx in groups.items():
            conts = [requests[n].args[1] for n in idx]
            lead = " " if all(c.startswith(" ") for c in conts) else ""
            opts = [c[len(lead):] for c in conts]
            if ctx == PRIOR_CONTEXT and lead == " ":
                scores = a.option_priors(opts, False)
            else:
                scores = a.vlm.continuation_logprobs(a._prefix_for(None, 1.0, None, None), ctx, opts, lead)
            for n, s in zip(idx, scores):
                out[n] = (float(s), False)
        return out  # type: ignore[return-value]

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """The context is the task's "Q: <question>\\nA:"; the answer is decoded greedily to the end of
        its line (at most 24 tokens), as `eval` answers a free-answer item."""
        out = []
        a = self.answerer
        for req in requests:
            ctx = req.args[0]
            question = ctx[len("Q: "):-len("\nA:")] if ctx.startswith("Q: ") and ctx.endswith("\nA:") else ctx
            out.append(a.generate(question))
        return out

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("streamlearn's model answers one question at a time")
