"""The stages: `frame` claims, runs and records any stage; `build`, `release` and `run` say what
each stage's work is (the table of stages is shared.stages)."""
