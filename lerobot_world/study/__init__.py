"""The study tools: policy presets (`presets`), the resumable variants x seeds runner (`matrix`), a finished
run's small files exported to results/ (`results`), and REPORT.md built from them (`report`)."""
