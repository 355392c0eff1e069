"""The profile engine: pure, Redis-free evaluation of events against a profile state.

Entry points live in `profile_service.engine.processor` (``process_event``, ``end_visit``,
``evaluate_delayed`` and the typed-value helpers for the API layer). The rest, by job:

- ``state``: the profile state, the normalized event and the outcome (inputs and outputs);
- ``plan``: one definitions version compiled into closures, cached per definitions object;
- ``values``: value coercion, limits and proto conversions;
- ``operands`` / ``operators`` / ``rules``: readers, condition operators, rules and audience
  expressions;
- ``enrichments``: every enrichment kind (``enrichment_*`` modules by family, e.g.
  ``enrichment_changes`` for change in number / date, ``enrichment_random_split``);
- ``visits`` / ``builtin_values``: visit lifecycle and the built-in attributes, fed by
  ``agent_visits`` (browser / OS / device from ``user_agents``) and ``page_visits``
  (entry / exit URL, referral);
- ``audiences`` / ``actions`` / ``outcomes``: memberships, connector actions, outcome and trace.
"""
