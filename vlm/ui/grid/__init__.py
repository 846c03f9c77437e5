"""The allocation grid of one pool feature, in parts (docs/architecture.md, "The UI").

- diff: the editor's pending edits -> service changes (pure)
- drafts: the editor's source frame, refused rows kept as typed (pure pandas)
- state: what one grid remembers between runs (session state)
- selection: which pool and feature the Allocations page shows
- view: the editable grid, its review and its Apply
- report: the last Apply's live reservation states and the retry of failed rows
- bulk: bulk add from a pasted or uploaded CSV
"""
