"""Scripted fault rules, shared by the wire proxy (faultproxy.py) and the Lambda router (moto_server.py).

A rule set is an ordered list of rules, replaced or extended at run time over a small JSON control API. Every
request (or Lambda invocation) is offered to the rules in order. A rule whose filters match counts the request
as `matched`, then decides whether to inject its fault:

    skip  N   the first N matches pass untouched (default 0)
    times N   at most N injections (default: no limit)
    rate  p   each match left after skip/times injects with probability p (default 1), drawn from the rule
              set's seeded RNG, so that a run repeats exactly for the same seed and the same request order

The first rule that injects wins: later rules never see that request (and do not count it as matched). Rules
that matched but did not inject let the request go on to the next rule. Every injection is appended to an
in-memory log (bounded) with its time, so a test can say exactly which calls were faulted.

The filters and actions a rule may use belong to the front end (see faultproxy.py and moto_server.py); this
module checks the common fields, rejects unknown keys (a typo must fail loudly, not silently match nothing),
keeps the counters under one lock and answers the control API:

    GET    <prefix>/rules            {"rules": [rule + "matched", "injected"]}
    POST   <prefix>/rules            body: a JSON list of rules (or one rule); replaces the list;
                                     with ?append=1 adds to it. Answers {"rules": [ids]}; 400 {"error"} if invalid
    DELETE <prefix>/rules            removes every rule
    GET    <prefix>/stats            {"rules": [{"id", "action", "matched", "injected"}],
                                      "totals": {"requests", "injected"}, "seen": {"<label>": count}}
    GET    <prefix>/log              {"log": [{"time", "rule", "action", ...details}]}
    DELETE <prefix>/log              empties the log
    POST   <prefix>/seed             body {"seed": N}: reseeds the RNG
    POST   <prefix>/reset            rules, counters and log cleared, RNG back to the start-up seed
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qs

COMMON_KEYS = {"id", "action", "skip", "times", "rate", "comment"}
LOG_SIZE = 10_000
_ids = itertools.count(1)


class Rule:
    """One rule: the spec as given, its compiled filters (front-end specific) and its counters."""

    __slots__ = ("spec", "id", "action", "skip", "times", "rate", "compiled", "matched", "injected")

    def __init__(self, spec: dict, compiled: Any):
        self.spec = spec
        self.id = str(spec.get("id") or f"rule-{next(_ids)}")
        self.action = spec["action"]
        self.skip = spec.get("skip", 0)
        self.times = spec.get("times")
        self.rate = float(spec.get("rate", 1.0))
        self.compiled = compiled
        self.matched = 0
        self.injected = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.spec.get(key, default)

    def describe(self) -> dict:
        return {**self.spec, "id": self.id, "matched": self.matched, "injected": self.injected}


def _check_count(spec: dict, key: str, allow_none: bool) -> None:
    value = spec.get(key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"rule {spec.get('id', '?')}: {key} must be a whole number >= 0, got {value!r}")


class RuleSet:
    """Thread-safe rules, counters, RNG and log.

    actions: action name -> the extra keys that action accepts.
    filters: the filter keys the front end understands.
    compile_rule(spec) -> compiled filters (any object; stored on the rule), raising ValueError when invalid.
    """

    def __init__(
        self,
        actions: dict[str, set[str]],
        filters: set[str],
        compile_rule: Callable[[dict], Any],
        seed: int = 0,
    ):
        self._actions = actions
        self._filters = filters
        self._compile = compile_rule
        self._seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[Rule] = []
        self._log: collections.deque = collections.deque(maxlen=LOG_SIZE)
        self._requests = 0
        self._injected = 0
        self._seen: collections.Counter = collections.Counter()

    # -- rules ------------------------------------------------------------------------------------------

    def build(self, specs: Any) -> list[Rule]:
        """Validates and compiles rules without installing them."""
        if isinstance(specs, dict):
            specs = [specs]
        if not isinstance(specs, list):
            raise ValueError("the body must be a JSON list of rules (or one rule object)")
        rules = []
        for spec in specs:
            if not isinstance(spec, dict):
                raise ValueError(f"a rule must be a JSON object, got {spec!r}")
            action = spec.get("action")
            if action not in self._actions:
                raise ValueError(f"rule {spec.get('id', '?')}: action must be one of {sorted(self._actions)}, got {action!r}")
            unknown = set(spec) - COMMON_KEYS - self._filters - self._actions[action]
            if unknown:
                raise ValueError(f"rule {spec.get('id', '?')}: unknown keys for action {action}: {sorted(unknown)}")
            _check_count(spec, "skip", allow_none=True)
            _check_count(spec, "times", allow_none=True)
            rate = spec.get("rate", 1.0)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"rule {spec.get('id', '?')}: rate must be a number in 0..1, got {rate!r}")
            rules.append(Rule(spec, self._compile(spec)))
        return rules

    def install(self, specs: Any, append: bool = False) -> list[str]:
        rules = self.build(specs)
        with self._lock:
            merged = (self._rules if append else []) + rules
            ids = [r.id for r in merged]
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"duplicate rule ids: {duplicates}")
            self._rules = merged
            return ids

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def reset(self) -> None:
        with self._lock:
            self._rules = []
            self._log.clear()
            self._requests = self._injected = 0
            self._seen.clear()
            self._rng.seed(self._seed)

    # -- decisions --------------------------------------------------------------------------------------

    def pick(self, matches: Callable[[Rule], bool], count: bool = True, label: str | None = None) -> Rule | None:
        """The rule that injects a fault into this request, or None. `matches(rule)` says whether a rule's
        filters accept the request; it runs under the lock, so it must be quick and must not call back."""
        with self._lock:
            if count:
                self._requests += 1
            if label:
                self._seen[label] += 1
            for rule in self._rules:
                if not matches(rule):
                    continue
                rule.matched += 1
                if rule.matched <= rule.skip:
                    continue
                if rule.times is not None and rule.injected >= rule.times:
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                rule.injected += 1
                self._injected += 1
                return rule
            return None

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._rng.uniform(low, high)

    def record(self, rule: Rule, **details: Any) -> dict:
        entry = {"time": round(time.time(), 6), "rule": rule.id, "action": rule.action, **details}
        with self._lock:
            self._log.append(entry)
        return entry

    # -- reports ----------------------------------------------------------------------------------------

    def stats(self) -> dict:
        with self._lock:
            return {
                "rules": [{"id": r.id, "action": r.action, "matched": r.matched, "injected": r.injected} for r in self._rules],
                "totals": {"requests": self._requests, "injected": self._injected},
                "seen": dict(self._seen),
            }

    def rules(self) -> list[dict]:
        with self._lock:
            return [r.describe() for r in self._rules]

    def log(self) -> list[dict]:
        with self._lock:
            return list(self._log)

    # -- control API ------------------------------------------------------------------------------------

    def control(self, method: str, path: str, query: str, body: bytes) -> tuple[int, dict]:
        """Answers one control request; `path` is what follows the prefix ("/rules", "/stats", ...)."""
        path = path.rstrip("/") or "/"
        try:
            if path == "/rules" and method == "GET":
                return 200, {"rules": self.rules()}
            if path == "/rules" and method == "POST":
                append = parse_qs(query).get("append", ["0"])[0].lower() in {"1", "true", "yes"}
                return 200, {"rules": self.install(_json(body), append=append)}
            if path == "/rules" and method == "DELETE":
                self.clear()
                return 200, {"rules": []}
            if path == "/stats" and method == "GET":
                return 200, self.stats()
            if path == "/log" and method == "GET":
                return 200, {"log": self.log()}
            if path == "/log" and method == "DELETE":
                with self._lock:
                    self._log.clear()
                return 200, {"log": []}
            if path == "/seed" and method == "POST":
                doc = _json(body) if body.strip() else None
                seed = doc.get("seed") if isinstance(doc, dict) else None
                if isinstance(seed, bool) or not isinstance(seed, int):
                    raise ValueError('body must be {"seed": <integer>}')
                with self._lock:
                    self._rng.seed(seed)
                return 200, {"seed": seed}
            if path == "/reset" and method == "POST":
                self.reset()
                return 200, {"reset": True}
        except ValueError as e:
            return 400, {"error": str(e)}
        return 404, {"error": f"no control endpoint {method} {path}"}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except json.JSONDecodeError as e:
        raise ValueError(f"body is not JSON: {e}") from None


def one_of(spec: dict, key: str) -> set[str] | None:
    """A filter given as a string or a list of strings, as a set (None when absent)."""
    value = spec.get(key)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"rule {spec.get('id', '?')}: {key} must be a string or a list of strings")
    return set(values)
