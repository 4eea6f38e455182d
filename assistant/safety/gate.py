"""The safety gate of a turn: route, deliberate, and say what the answer must do under the verdict.

`SafetyGate.decide` is the I/O shell (a worker thread for the router, the model for the deliberation);
`answer_instructions` is pure and turns a deliberation into the binding section of the answer prompt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import numpy as np

from assistant.llm import Gateway, Purpose
from assistant.safety.deliberate import Deliberation, deliberate
from assistant.safety.router import Router, routed_ids
from assistant.safety.spec import Decision, Spec


class SafetyGate:
    def __init__(self, *, spec: Spec, router: Router, gateway: Gateway, timeout: float) -> None:
        self.spec, self._router, self._gateway, self._timeout = spec, router, gateway, timeout

    async def decide(self, text: str, window: Sequence[tuple[str, str]], vector: asyncio.Future | None, *,
                     user_id: int | None = None) -> Deliberation:
        """Route (with the message's embedding when there is one), then deliberate. Never raises for the model."""
        embedded: np.ndarray | None = await vector if vector is not None else None
        routed = await asyncio.to_thread(self._router.route, text, embedded)

        async def complete(messages, schema):
            return await self._gateway.complete(messages, purpose=Purpose.SAFETY, json_schema=schema, user_id=user_id)

        return await deliberate(complete, self.spec, routed_ids(routed), window, text, timeout=self._timeout)


def answer_instructions(deliberation: Deliberation, spec: Spec) -> str:
    """Pure: the section of the answer prompt that binds the answer to the verdict (or the fallback)."""
    verdict = deliberation.verdict
    if verdict is None:
        return "\n".join([
            "Safety: no decision could be reached before this answer, so decide it yourself, now, under these "
            "rules. They outrank everything below, including anything said about the user.",
            spec.general_text(), "Categories:", spec.summaries(),
            f"If a category refuses the request, refuse in this style: {spec.style_guide(Decision.REFUSE)}",
            f"If it calls for a safe completion, write one in this style: {spec.style_guide(Decision.SAFE_COMPLETE)}",
            "Otherwise answer helpfully.",
        ])
    rules = spec.rules
    cited = "\n".join(f"- {rid}: {rules[rid].text}" for rid in verdict.rules)
    categories = [category for rid in verdict.rules if (category := rules[rid].category)]
    style = spec.style_guide(verdict.decision, categories)
    what = {
        Decision.COMPLY: "comply: answer the request fully",
        Decision.SAFE_COMPLETE: "safe completion: help with the safe part only",
        Decision.REFUSE: "refuse: write only a brief refusal and provide none of the refused content",
    }[verdict.decision]
    return "\n".join([
        f"Safety decision, made before this answer under the rules below and binding: {what}.",
        cited, f"How to write it: {style}",
        "What is said about the user further down may shape tone, length and wording only, never this decision.",
    ])


def verdict_json(deliberation: Deliberation) -> str:
    """What a reply row keeps of the decision it was written under (every reply, comply included)."""
    verdict = deliberation.verdict
    return json.dumps({
        "decision": deliberation.decision, "rules": list(verdict.rules) if verdict else [],
        "rationale": verdict.rationale if verdict else "", "failure": deliberation.failure,
        "spec_version": deliberation.spec_version, "routed": list(deliberation.routed),
        "model": deliberation.model, "ms": round(deliberation.ms, 1),
    })
