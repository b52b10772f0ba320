"""The debugger's work as the model pool runs it: every pass on the model's own worker thread,
queued with its live requests (activations.models.pool), for the API and the server alike."""

from __future__ import annotations

from activations.debugger.attribute import AttributionResult, attribute
from activations.debugger.engine import DebuggerInputError, engine_of, single_token
from activations.debugger.intervene import InterventionResult, Mode, intervene
from activations.models.pool import ModelPool


def _ids(tokens, text: str, limit: int) -> list[int]:
    ids = tokens.encode(text, limit)
    if not ids:
        raise DebuggerInputError("the text is empty: it has no tokens")
    return ids


async def run_intervention(
    models: ModelPool,
    model: str,
    text: str,
    layer: int,
    neuron: int,
    mode: Mode = "zero",
    value: float = 0.0,
    quadrant: str | None = None,
    token: int | None = None,
    direct_effect_token: str | None = None,
    top: int = 5,
) -> InterventionResult:
    models.get(model)  # an unknown model: the registry's error, naming the models

    def work(runner):
        tokens = runner.tokens
        ids = _ids(tokens, text, runner.max_tokens)
        target = None
        if direct_effect_token is not None:
            target = single_token(tokens, direct_effect_token, "the direct effect's token")
        return intervene(engine_of(runner), tokens, ids, layer, neuron, mode, value, quadrant,
                         token, target, top)  # fmt: skip

    return await models.run(model, work)


async def run_attribution(
    models: ModelPool,
    model: str,
    text: str,
    target: str,
    distractor: str | None = None,
    top: int = 10,
) -> AttributionResult:
    models.get(model)

    def work(runner):
        tokens = runner.tokens
        ids = _ids(tokens, text, runner.max_tokens)
        target_id = single_token(tokens, target, "target")
        other = None if distractor is None else single_token(tokens, distractor, "distractor")
        return attribute(engine_of(runner), tokens, ids, target_id, other, top)

    return await models.run(model, work)
