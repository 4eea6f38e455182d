"""The tests' browser tab without a browser: the one `hyperalign bench load` drives (assistant.measure)."""

from assistant.measure.socket_tab import ChatTab, event_text

__all__ = ["ChatTab", "event_text"]
