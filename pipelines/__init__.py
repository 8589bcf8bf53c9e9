"""The KFP pipeline wiring the components, its compiled IR, and run/compile/submit."""
