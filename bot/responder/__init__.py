"""What the bot says: the answer from the FAQ, or a generated reply that is checked against it.

- `extractive.py`: the matched entry's answer, suggestions, no-match; the fallback of every
  generated reply, and the `Responder` protocol;
- `llm.py`: generated replies: prompt → model → checks → reply or the extractive fallback;
- `prompt.py`: the grounded prompt; `pii.py`: personal data masked before a prompt (and in
  logs and at rest, bot/privacy/masking.py);
- `grounding.py`: the checks that every fact of a reply is in the FAQ;
- `translation.py`: `reply_in = "translate"`: an answer translated and checked against it.
"""

from bot.responder.extractive import Draft, ExtractiveResponder, Responder, ResponseContext

__all__ = ["Draft", "ExtractiveResponder", "Responder", "ResponseContext"]
