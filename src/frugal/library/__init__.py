"""frugal as a library: `wrap` an official OpenAI SDK client and its cached routes are
answered by frugal's pipeline in this process (`frugal.library.clients`); `frugal.langchain`
gives LangChain the same cache, on a `LoopThread` as a wrapped sync client's pipeline.

The public face is below; the modules behind it are private rooms.
"""

from frugal.library.clients import wrap
from frugal.library.loop import LoopThread

__all__ = ["LoopThread", "wrap"]
