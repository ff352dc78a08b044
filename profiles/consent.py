"""A shopper's consent: what the engine may do with their events.

``consent_updated`` events set both flags; the newest event time wins, and a tie keeps
the stricter answer so arrival order never decides. Without any such event,
personalization is allowed and marketing follows the ``marketing_consent`` trait.

>>> from schemas.profile import ProfileHead, UserState
>>> state = UserState()
>>> personalization_allowed(state), marketing_allowed(state)
(True, False)
>>> apply_consent(state, personalization=False, marketing=True, ts=10)
>>> personalization_allowed(state), marketing_allowed(state)
(False, True)
>>> apply_consent(state, personalization=True, marketing=True, ts=5)  # older: ignored
>>> personalization_allowed(state)
False
"""

from __future__ import annotations

from schemas.profile import ProfileHead, UserState


def apply_consent(state: UserState, *, personalization: bool, marketing: bool, ts: int) -> None:
    current = state.consent
    if current is not None and ts < current[2]:
        return
    if current is not None and ts == current[2]:
        personalization = personalization and current[0]
        marketing = marketing and current[1]
    state.consent = [personalization, marketing, ts]


def personalization_allowed(state: UserState | ProfileHead) -> bool:
    return state.consent is None or state.consent[0] is True


def marketing_allowed(state: UserState) -> bool:
    if state.consent is not None:
        return state.consent[1] is True
    return state.traits.get("marketing_consent", [False])[0] is True
