"""How the shopper feels: a score per message, the escalation cues, the conversation's mood.

- `analyzer.py`: the polarity backends (example classifiers on the turn's own vectors, VADER,
  snownlp, a transformers model, mixed per language), the cues applied, the rolling mood;
- `models.py`: the example classifiers, shipped trained (`python -m bot.sentiment.models`
  regenerates them when the examples change);
- `snownlp_worker.py`: snownlp in a worker process (its model load would stall the event loop);
- `evaluation.py`: `kefu eval sentiment` on a labelled file.

Nothing is imported here: the worker process imports `snownlp_worker` alone, without numpy
or the encoders.
"""
