"""Contract suite: schemathesis and hypothesis against the emulator or a real provider."""
