"""Which language the shopper writes in, and which one kefu answers in.

- `detector.py`: lingua over every language it knows, with the shop's enabled languages as
  priors for short messages, and the reply language they lead to;
- `evaluation.py`: `kefu eval language` on a labelled file, by message length.
"""
