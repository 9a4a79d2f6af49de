"""The contract suite: does an emulator, or the real provider, honour each provider's contract?

runner.py          one run: the target, then per provider the three suites below; ``run(Options(...))``
target.py          where requests go: an emulator started here, a running emulator, or a real provider
openapi_suite.py   schemathesis (Python API): every check, examples/coverage/fuzzing/stateful phases
checks.py          the emulator's own invariants as schemathesis checks (rate-limit headers, ETags)
flows/             hypothesis state machines per provider flow, over a real HTTP client
documented.py      the providers' documented examples (spec request examples, docs' curl) replayed verbatim
results.py         what a run found; report.py renders it (rich table, JUnit XML, Markdown with curl)
console.py         ``upload-emulator contract``; conftest.py and test_contracts.py: ``pytest contracts/``
"""
