"""Adapters that run Driftline's engine inside other stream frameworks.

:mod:`driftline.integrations.faust` (extra ``driftline[faust]``) runs it in a Faust agent;
:mod:`driftline.integrations.outputs` turns the engine's outputs into the messages of the
event contract (docs/events.md) for any transport. What each adapter guarantees, and what
it does not, is in docs/integrations.md.
"""

__all__: list[str] = []
