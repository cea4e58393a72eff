//! Helpers shared by the built-in nodes for media bytes (filled in by the media issue).
